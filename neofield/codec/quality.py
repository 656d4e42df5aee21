"""Quality: a bundle, or a file neofield decoded, scored against its original (``neofield psnr``), and the
encoder's own measure of the field it stores.

Both render the field on the grid it was fitted on and compare with :func:`neofield.compare.compare`;
a bundle is checked to be of the very samples it is scored against, by their fingerprint.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np
from torch import nn

from .. import bundle as bundle_io
from ..compare import compare, size_report
from ..errors import NeofieldError
from ..media import Media, Selection, fingerprint, read_media
from ..render import DecodePlan, VideoGrid, decode_cost, plan_decode, probe_speed, render_media, render_video
from ..schema import DEFAULT_LIMITS, Limits
from ..signal import CoordinateMap, Signal, ValueMap
from .decoder import check_cost, load, read_decode_tag

MEASURE_SECONDS = 60.0  # the encoder's own quality check on a large clip is bounded (see measure)
MEASURE_MIN_FRAMES = 8  # ... but never to fewer frames than this


def measure(field_: nn.Module, signal: Signal, points_per_second: float | None = None) -> dict:
    """Quality of the field against the signal on the training grid (what the bundle stores).

    Rendering a whole large clip takes longer than many fits (121 M points of
    Big Buck Bunny at 1280x720: ~20 minutes on 2 cores), so when the fit's
    speed says it would take over ``MEASURE_SECONDS`` the pictures are measured
    on evenly spaced frames, and the report says how many
    (``video_frames_measured``); the sound is always measured whole, and
    ``neofield psnr`` always measures everything.
    """
    layout = signal.layout()
    media = signal.media
    if media.video is None or media.still or not points_per_second:
        return compare(media, render_media(field_, layout))
    frames, h, w, _ = media.video.shape
    count = max(int(MEASURE_SECONDS * points_per_second / (h * w)), MEASURE_MIN_FRAMES)
    if count >= frames:
        return compare(media, render_media(field_, layout))
    picks = np.unique(np.linspace(0, frames - 1, count).round().astype(int))
    cmap, vmap = CoordinateMap.from_dict(layout["coordinates"]), ValueMap(**layout["values"]["video"])
    rendered = [next(render_video(field_, cmap, VideoGrid(w, h, 1, media.fps, k / media.fps), vmap,
                                  slice(*layout["outputs"]["video"]))) for k in picks]
    original = Media(video=media.video[picks], fps=media.fps, audio=media.audio, sample_rate=media.sample_rate)
    candidate = Media(video=np.stack(rendered), fps=media.fps)
    if media.audio is not None:
        candidate.audio = render_media(field_, layout, DecodePlan(None, plan_decode(layout).audio)).audio
        candidate.sample_rate = media.sample_rate
    return {**compare(original, candidate), "video_frames_measured": len(picks)}



def psnr(original: str | Path, candidate: str | Path, selection: Selection | None = None,
         per_frame: bool = False, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Quality of a bundle (or a decoded file) against the original media.

    For a bundle, the original is cut with the selection stored in the bundle
    and must be the very signal that was encoded (checked by fingerprint); the
    report adds the bundle size, bits per pixel or kbps, and the compression
    ratio against the raw signal (8-bit RGB, 16-bit PCM). A file written by
    ``decode`` carries the same selection in a tag, so it needs no options
    either, and a lossy one is reported beside the field's own quality.
    """
    if selection is not None:
        selection.check()
    candidate = Path(candidate)
    if candidate.suffix.lower() == ".nf":
        b = load(candidate, limits)
        stored = Selection.from_dict(b.meta["source"]["selection"])
        if selection is not None and selection != stored:
            raise NeofieldError(f"{candidate} was encoded from the piece ({_describe(stored)}) of its source; the "
                                f"options ask for ({_describe(selection)}): leave them out, a bundle knows its piece")
        media = read_media(original, stored)
        if fingerprint(media) != b.meta["source"]["sha256"]:
            raise NeofieldError(f"{original} is not the media {candidate} was encoded from "
                                f"(it was {b.meta['source']['name']!r}, {_describe(stored)})")
        # the samples are the encoded ones; a grid that disagrees with them is a damaged (or hostile) bundle,
        # and must not decide how much is rendered
        if _grid(Signal(media).geometry()) != _grid(b.meta["geometry"]):
            raise NeofieldError(f"{candidate}: its geometry does not match the piece of {original} it was encoded "
                                "from: the bundle is damaged")
        plan = plan_decode(b.meta)
        channels = (b.meta["geometry"].get("audio") or {}).get("channels", 0)
        check_cost(decode_cost(plan, channels, probe_speed(b.field)), limits)
        report = compare(media, render_media(b.field, b.meta, plan), per_frame)
        split = {f"bytes_{part}": n for part, n in bundle_io.stored_bytes(candidate.read_bytes(), limits).items()}
        for key, value in size_report(candidate.stat().st_size, media).items():
            report[key] = value
            if key == "bytes":  # where the bytes go, right under their total
                report.update(split)
        return report
    tag = read_decode_tag(candidate)
    if selection is None and tag is not None:
        selection = _tag_selection(tag)
    media = read_media(original, selection or Selection())
    if tag is not None and tag["original_grid"] and selection == _tag_selection(tag) \
            and fingerprint(media) != tag["source"].get("sha256"):
        raise NeofieldError(f"{original} is not the media {candidate} was decoded from "
                            f"(its bundle was encoded from {tag['source'].get('name')!r})")
    other = read_media(candidate)
    window = ((tag or {}).get("grid", {}).get("video") or {}).get("window")
    if window is not None and media.video is not None and list(window) != [0.0, 0.0, 1.0, 1.0]:
        media = crop_media(media, window)  # a --crop decode: the same window of the original
    if media.kind != other.kind and {media.kind, other.kind} != {"video", "audiovisual"}:
        raise NeofieldError(f"cannot compare {media.kind} with {other.kind}")
    report = compare(media, other, per_frame)
    if tag is not None and tag.get("field_quality"):
        for key, value in tag["field_quality"].items():
            if key.endswith("_psnr_db") and key in report:
                report[f"field_{key}"] = value  # the bundle's own score on this grid
                report[f"{key[:-8]}_output_loss_db"] = round(value - report[key], 4)
    return report


def crop_media(media, window) -> object:
    """The window (left, top, right, bottom fractions) of the media's frames, to whole pixels."""
    _, h, w, _ = media.video.shape
    left, top, right, bottom = (round(f * n) for f, n in zip(window, (w, h, w, h)))
    return dataclasses.replace(media, video=media.video[:, top:bottom, left:right])


def _grid(geometry: dict) -> tuple:
    """The numbers of a geometry that decide what is rendered."""
    v, a = geometry.get("video") or {}, geometry.get("audio") or {}
    return (tuple(v.get(k) for k in ("width", "height", "frames", "fps")),
            tuple(a.get(k) for k in ("sample_rate", "channels", "samples")))


def _tag_selection(tag: dict) -> Selection:
    """The original's piece a decoded file shows: the bundle's selection, narrowed
    to the decode's time range when it was a part."""
    stored = Selection.from_dict(tag["source"].get("selection") or {})
    if tag.get("original_grid"):
        return stored
    grids = tag.get("grid", {})
    starts = [g["start"] for g in grids.values()]
    ends = [g["start"] + g["seconds"] for g in grids.values()]
    if not starts:
        return stored
    return Selection(stored.start + min(starts), max(ends) - min(starts), None, stored.resize)


def _describe(sel: Selection) -> str:
    parts = [f"start {sel.start:g} s"]
    if sel.duration is not None:
        parts.append(f"for {sel.duration:g} s")
    if sel.max_frames is not None:
        parts.append(f"at most {sel.max_frames} frames")
    if sel.resize is not None:
        parts.append(f"resized to {sel.resize[0]}x{sel.resize[1]}")
    return ", ".join(parts)
