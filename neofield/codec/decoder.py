"""``decode``: a bundle's field rendered on any grid and written as real media; ``load`` opens a bundle.

Before anything is rendered the decode is planned (:func:`neofield.render.plan_decode`), its cost checked
against the limits, and the output checked not to overwrite anything unasked; the file is written under a
temporary name and renamed into place once complete. A decoded file carries a tag (:func:`decode_tag`) so
that ``neofield psnr ORIGINAL FILE`` can cut the same piece of the original.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__, collection
from .. import bundle as bundle_io
from .. import options as opt
from ..bundle import Bundle
from ..errors import NeofieldError
from ..files import atomic_output, check_output
from ..media import keeps_sample_aspect_ratio, read_tags, write_audio, write_image, write_image_sequence, write_video
from ..outputs import OutputTarget, resolve_target
from ..render import (
    DecodeCost,
    DecodePlan,
    Evaluator,
    decode_cost,
    plan_decode,
    probe_speed,
    render_media,
    should_compile,
)
from ..runtime import compiler_available
from ..schema import DEFAULT_LIMITS, Limits
from .options import check_decode_options


def load(path: str | Path, limits: Limits = DEFAULT_LIMITS, item: str | int | None = None) -> Bundle:
    """Read a ``.nf`` bundle (raises :class:`NeofieldError` if it is not a valid one within ``limits``).

    A set bundle (``neofield set fit``) holds many signals over one backbone: ``item`` (an index or a
    name) picks one, returned as an ordinary single-signal bundle.
    """
    return collection.select(bundle_io.load(path, limits), item, str(path))


TAG_KEY = "comment"  # a container tag every muxer we write keeps (mp4, mov, mkv, webm, flac, ogg, wav)


@dataclass
class DecodeReport:
    path: Path | None  # None when written to standard output
    kind: str  # video, audio, still or sequence
    plan: DecodePlan
    bytes: int
    files: int = 1
    notes: list[str] = field(default_factory=list)
    cost: DecodeCost | None = None  # what was estimated before rendering
    seconds: float = 0.0  # what rendering and writing took

    def to_dict(self) -> dict:
        return {"path": str(self.path) if self.path else "-", "kind": self.kind, "grid": self.plan.to_dict(),
                "points": self.plan.points, "bytes": self.bytes, "files": self.files, "notes": self.notes,
                "cost": self.cost.to_dict() if self.cost else None, "seconds": round(self.seconds, 2)}


def check_cost(cost: DecodeCost, limits: Limits) -> None:
    """A decode that would take more than the limits allow is refused before it starts, in one line."""
    hint = "; --allow-large raises the limits"
    if cost.points > limits.decode_points:
        raise NeofieldError(f"this decode would evaluate the field at {cost.points:,} points, more than the "
                            f"{limits.decode_points:,} allowed (about {_hours(cost.seconds)} here){hint}")
    if cost.memory_bytes > limits.decode_bytes:
        raise NeofieldError(f"this decode would hold {cost.memory_bytes / 2**30:.1f} GiB at once (a frame and "
                            f"its copies, or the whole sound), more than the {limits.decode_bytes / 2**30:.1f} GiB "
                            f"allowed{hint}")
    if cost.seconds > limits.decode_seconds:
        raise NeofieldError(f"this decode would take about {_hours(cost.seconds)} on this machine "
                            f"({cost.points:,} points at {cost.points_per_second:,.0f} per second), more than the "
                            f"{_hours(limits.decode_seconds)} allowed{hint}")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 \
        else f"{seconds:.0f} s"


def check_plan(plan: DecodePlan) -> None:
    """Sizes a scale produced must still be ones a file can hold."""
    if plan.video is not None:
        v = plan.video
        if max(v.width, v.height) > opt.MAX_SIDE:
            raise NeofieldError(f"the decoded frames would be {v.width}x{v.height}: at most {opt.MAX_SIDE} "
                                "pixels a side")
        if v.fps > opt.MAX_FPS:
            raise NeofieldError(f"the decoded frame rate would be {v.fps:g} fps: at most {opt.MAX_FPS:g}")
        if v.fps < opt.MIN_FPS:
            raise NeofieldError(f"the decoded frame rate would be {v.fps:g} fps: at least {opt.MIN_FPS:g}")
    if plan.audio is not None and plan.audio.sample_rate > opt.MAX_SAMPLE_RATE:
        raise NeofieldError(f"the decoded sample rate would be {plan.audio.sample_rate} Hz: at most "
                            f"{opt.MAX_SAMPLE_RATE}")


def decode(
    bundle_path: str | Path,
    output: str | Path | None = None,
    *,
    scale: float = 1.0,
    scale_time: float | None = None,
    scale_rate: float | None = None,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    sample_rate: int | None = None,
    start: float | None = None,
    end: float | None = None,
    frame: float | None = None,
    crop: tuple[int, int, int, int] | None = None,
    between: str = "blend",
    codec: str | None = None,
    crf: float | None = None,
    lossless: bool = False,
    format: str | None = None,
    force: bool = False,
    compile_mode: str = "auto",
    limits: Limits = DEFAULT_LIMITS,
    item: str | int | None = None,
    on_plan: Callable[[DecodeCost], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DecodeReport:
    """Render a bundle's field on a grid and write it as real media.

    The output's name picks what is written (see :mod:`neofield.outputs`).
    Video defaults to what plays everywhere (H.264 4:2:0 + AAC in mp4/mov/mkv,
    VP9 + Opus in webm); ``lossless`` writes the exact RGB file used in
    measurement (H.264 RGB qp 0 + FLAC), so it shows the field's error alone.

    Before rendering, the cost (points, memory, time at a speed probed here)
    is checked against ``limits`` and passed to ``on_plan``; ``on_progress``
    then gets (points done, points in all) as the field is evaluated. Long
    decodes compile the field (``compile_mode`` ``auto``, see
    :func:`neofield.render.should_compile`). ``item`` picks one signal of a set bundle (see :func:`load`).
    ``crop`` (x, y, width, height in pixels of the frames the other options give) renders that window alone.
    ``between`` is what a frame between the fitted frames' times shows (:func:`neofield.render.plan_decode`).
    """
    check_decode_options(scale, scale_time, scale_rate, size, fps, sample_rate, start, end, frame, crf, crop,
                         compile_mode, between)
    bundle_path = Path(bundle_path)
    b = load(bundle_path, limits, item)
    target = resolve_target(output, bundle_path, b.meta, scale, format, frame)
    if target.kind != "video" and (codec is not None or crf is not None or lossless):
        raise NeofieldError("--codec, --crf and --lossless apply to video files (.mp4 .mov .mkv .webm .gif)")
    if target.kind == "sequence" and not target.path.parent.is_dir():
        raise NeofieldError(f"output folder {target.path.parent} does not exist")
    if target.kind != "sequence" and not target.stdout:
        check_output(target.path, force)  # before any rendering
    plan = plan_decode(b.meta, scale, size, fps, sample_rate, start, end, scale_time, scale_rate, frame, crop,
                       between)
    notes = []
    if target.kind in ("still", "sequence"):
        plan = DecodePlan(plan.video, None)
    elif target.kind == "audio":
        plan = DecodePlan(None, plan.audio)
    elif target.suffix == ".gif" and plan.audio is not None:
        plan = DecodePlan(plan.video, None)
        notes.append("a gif holds no sound: the sound was left out")
    sar = tuple((b.meta["geometry"].get("video") or {}).get("sample_aspect_ratio") or (1, 1))
    if target.kind != "audio" and sar != (1, 1) and not keeps_sample_aspect_ratio(target.path, codec, lossless):
        notes.append(f"{target.suffix} cannot carry the source's pixel aspect ratio {sar[0]}:{sar[1]} "
                     "here: use .mp4 or .mov to keep it")
    if plan.video is None and target.kind != "audio":
        raise NeofieldError(f"no video lies after --start {start or 0:g} s (only sound does); decode it to .wav")
    check_plan(plan)
    if compile_mode == "on" and not compiler_available(torch.device("cpu")):
        raise NeofieldError("--compile on needs a C++ compiler (g++ or clang++); use --compile off or auto")
    channels = (b.meta["geometry"].get("audio") or {}).get("channels", 0)
    cost = decode_cost(plan, channels, probe_speed(b.field))
    check_cost(cost, limits)
    cost = dataclasses.replace(cost, compiled=should_compile(compile_mode, torch.device("cpu"), cost.seconds))
    if on_plan:
        on_plan(cost)
    done = 0

    def counted(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, cost.points)

    run = Evaluator(b.field, compiled=cost.compiled, on_points=counted)
    t0 = time.perf_counter()
    media = render_media(run, b.meta, plan, video_stream=True)
    tags = {TAG_KEY: json.dumps(decode_tag(bundle_path, b.meta, plan), sort_keys=True)}

    if target.kind == "sequence":
        paths = write_image_sequence(str(target.path), media.video, force=force, frames_total=plan.video.frames)
        return DecodeReport(target.path, target.kind, plan, sum(p.stat().st_size for p in paths), len(paths),
                            notes + run.notes, cost, time.perf_counter() - t0)
    with _destination(target, force) as tmp:
        if target.kind == "still":
            write_image(tmp, next(iter(media.video)))
        elif target.kind == "audio":
            write_audio(tmp, media.audio, media.sample_rate, metadata=tags)
        else:
            write_video(tmp, media.video, media.fps, media.audio,
                        media.sample_rate, codec=codec, crf=crf, lossless=lossless, sample_aspect_ratio=sar,
                        end_time=plan.video.seconds, frames_total=plan.video.frames,
                        metadata=tags)
        nbytes = tmp.stat().st_size
    return DecodeReport(None if target.stdout else target.path, target.kind, plan, nbytes, 1, notes + run.notes,
                        cost, time.perf_counter() - t0)


@contextlib.contextmanager
def _destination(target: OutputTarget, force: bool) -> Iterator[Path]:
    """A temporary file that becomes the output only once it is complete: renamed
    into place, or for ``-o -`` copied to standard output."""
    if not target.stdout:
        with atomic_output(target.path, force=force) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix="neofield-") as folder:
        tmp = Path(folder) / target.path.name
        yield tmp
        with open(tmp, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def decode_tag(bundle_path: Path, meta: dict, plan: DecodePlan) -> dict:
    """What a decoded file says about itself, so that ``psnr ORIGINAL FILE`` can cut
    the same piece of the original and tell the field's loss from the file's."""
    full = plan_decode(meta)
    on_original_grid = (plan.video == full.video or plan.video is None) and (plan.audio == full.audio
                                                                             or plan.audio is None)
    return {"neofield": __version__, "bundle": bundle_path.name, "source": meta["source"],
            "grid": plan.to_dict(), "original_grid": on_original_grid,
            "field_quality": meta.get("quality", {}) if on_original_grid and
            "video_frames_measured" not in meta.get("quality", {}) else {}}


def read_decode_tag(path: Path) -> dict | None:
    """The tag :func:`decode` wrote into ``path``, or None for other files."""
    try:
        tag = json.loads(read_tags(path).get(TAG_KEY, ""))
    except ValueError:
        return None
    return tag if isinstance(tag, dict) and "neofield" in tag and isinstance(tag.get("source"), dict) else None
