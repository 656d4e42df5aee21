"""The codec: media -> signal -> field -> bundle, and back, as plain functions.

This is the Python API the CLI wraps::

    import neofield
    report = neofield.encode("clip.mp4", "clip.nf", time_budget=120)
    neofield.decode("clip.nf", "clip_2x.mp4", scale=2)
    print(neofield.psnr("clip.mp4", "clip.nf"))
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from . import bundle as bundle_io
from .bundle import Bundle
from .errors import NeofieldError
from .fields.neomlp import PRESETS, NeoMLPField, Segmentation, build_config
from .files import atomic_output, check_output
from .fit import FitConfig, FitProgress, FitResult, fit
from .media import (
    AUDIO_OUT_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_OUT_SUFFIXES,
    Media,
    Selection,
    read_media,
    write_audio,
    write_image,
    write_video,
)
from .metrics import audio_psnr, bits_per_pixel, kbps, video_psnr
from .render import AudioGrid, VideoGrid, render_audio, render_video
from .signal import CoordinateMap, Signal, ValueMap

DEFAULT_EPOCHS = 30
AUDIO_SAMPLES_PER_SEGMENT = 1024  # one latent set per ~23 ms of 44.1 kHz audio


# ---------------------------------------------------------------- encode ----
@dataclass
class EncodeReport:
    path: Path
    bytes: int
    kind: str
    parameters: dict
    fit: FitResult
    quality: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, "kind": self.kind, "parameters": self.parameters,
                "fit": self.fit.to_dict(), "quality": self.quality}


def default_preset(kind: str) -> str:
    """CPU defaults, measured (docs/cpu-defaults.md): ``small`` for sound, ``tiny`` for pictures."""
    return "small" if kind == "audio" else "tiny"


def default_segments(signal: Signal) -> int:
    """One latent set per video frame, or per ~1,024 audio samples for pure sound."""
    if signal.video is not None:
        return len(signal.video)
    return max(1, math.ceil(signal.n_audio_points / AUDIO_SAMPLES_PER_SEGMENT))


def make_field(signal: Signal, preset: str, segments: int, seed: int = 0, **overrides) -> NeoMLPField:
    """A fresh NeoMLP sized for ``signal``, with ``segments`` latent sets along time."""
    if preset not in PRESETS:
        raise NeofieldError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if segments < 1:
        raise NeofieldError("--segments must be >= 1")
    config = build_config(preset, signal.coordinate_map.in_features, signal.out_features, kind=signal.kind,
                          seed=seed, **overrides)
    lo, hi = signal.coordinate_map.time_span(signal.duration)
    torch.manual_seed(seed)
    return NeoMLPField(config, Segmentation(segments, lo, hi))


def encode(
    source: str | Path,
    output: str | Path | None = None,
    *,
    selection: Selection = Selection(),
    preset: str | None = None,
    segments: int | None = None,
    lr: float | None = None,
    warmup_steps: int | None = None,
    batch_size: int = 4096,
    steps: int | None = None,
    epochs: float | None = None,
    time_budget: float | None = None,
    attention: str | None = None,
    rff_sigma: float | tuple[float, ...] | None = None,
    audio_share: float | None = None,
    weights_dtype: str = "float16",
    seed: int = 0,
    device: str = "auto",
    force: bool = False,
    evaluate: bool = True,
    callback: Callable[[FitProgress], None] | None = None,
    on_signal: Callable[[Signal, NeoMLPField], None] | None = None,
) -> EncodeReport:
    """Fit a NeoMLP to a media file and write it as a ``.nf`` bundle.

    With no stopping rule given, fits ``DEFAULT_EPOCHS`` epochs. ``on_signal``
    is called once the media is read and the field built (the CLI prints the
    plan there).
    """
    source = Path(source)
    output = Path(output) if output is not None else source.with_suffix(".nf")
    check_output(output, force)  # fail before minutes of fitting, not after
    if weights_dtype not in bundle_io.WEIGHT_DTYPES:
        raise NeofieldError(f"--dtype must be one of {', '.join(bundle_io.WEIGHT_DTYPES)}")
    media = read_media(source, selection)
    signal = Signal(media, audio_share=audio_share)
    preset = preset or default_preset(signal.kind)
    if isinstance(rff_sigma, tuple) and len(rff_sigma) != signal.coordinate_map.in_features:
        raise NeofieldError(f"--rff-sigma needs one value or {signal.coordinate_map.in_features} "
                            f"(one per input: {'x, y, t' if signal.coordinate_map.x else 't'})")
    field_ = make_field(signal, preset, segments or default_segments(signal), seed=seed, attention=attention,
                        rff_sigma=rff_sigma)
    if not (steps or epochs or time_budget):
        epochs = DEFAULT_EPOCHS
    p = PRESETS[preset]
    config = FitConfig(lr=lr or p.lr, warmup_steps=p.warmup_steps if warmup_steps is None else warmup_steps,
                       batch_size=batch_size, steps=steps, epochs=epochs, time_budget=time_budget, seed=seed,
                       device=device)
    if on_signal:
        on_signal(signal, field_)
    result = fit(field_, signal, config, callback)
    field_.cpu()
    bundle_io.round_weights(field_, weights_dtype)
    quality = measure(field_, signal) if evaluate else {}
    meta = signal_metadata(signal, source, selection)
    meta.update(weights_dtype=weights_dtype, preset=preset, fit={**result.to_dict(), "config": config.to_dict()},
                quality=quality)
    nbytes = bundle_io.save(output, field_, meta, force=force)
    return EncodeReport(path=output, bytes=nbytes, kind=signal.kind, parameters=field_.num_parameters(),
                        fit=result, quality=quality)


def signal_metadata(signal: Signal, source: Path, selection: Selection) -> dict:
    """Everything a decoder needs besides the weights (see docs/format.md)."""
    return {"neofield_version": __version__, **signal.layout(),
            "source": {"name": source.name, "selection": selection.to_dict(), "sha256": fingerprint(signal.media)}}


def fingerprint(media: Media) -> str:
    """SHA-256 of the decoded samples: lets ``psnr`` check it was given the right original."""
    h = hashlib.sha256()
    for arr in (media.video, media.audio):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def measure(field_: NeoMLPField, signal: Signal) -> dict:
    """PSNR of the field against the signal on the training grid."""
    return compare(signal.media, render_media(field_, signal.layout()))


# ---------------------------------------------------------------- decode ----
def load(path: str | Path) -> Bundle:
    """Read a ``.nf`` bundle (raises :class:`NeofieldError` if it is not a valid one)."""
    return bundle_io.load(path)


@dataclass(frozen=True)
class DecodePlan:
    """The grid a decode renders: derived from the original geometry and the options."""

    video: VideoGrid | None
    audio: AudioGrid | None


def plan_decode(meta: dict, scale: float = 1.0, size: tuple[int, int] | None = None, fps: float | None = None,
                sample_rate: int | None = None, start: float | None = None, end: float | None = None) -> DecodePlan:
    """Resolve ``--scale/--size/--fps/--sample-rate/--start/--end`` against a bundle's geometry."""
    if not scale > 0:
        raise NeofieldError("--scale must be > 0")
    geo = meta["geometry"]
    if (size or fps) and "video" not in geo:
        raise NeofieldError("--size and --fps apply to pictures; this bundle holds sound only")
    if sample_rate and "audio" not in geo:
        raise NeofieldError("--sample-rate applies to sound; this bundle holds no sound")
    duration = geo["duration"]
    t0 = 0.0 if start is None else start
    t1 = duration if end is None else end
    if t0 < 0 or t1 > duration + 1e-6 or t1 <= t0:
        raise NeofieldError(f"--start/--end must satisfy 0 <= start < end <= {duration:.3f} s")
    video = audio = None
    if "video" in geo:
        g = geo["video"]
        w, h = size or (max(1, round(g["width"] * scale)), max(1, round(g["height"] * scale)))
        if g.get("still"):
            video = VideoGrid(w, h, 1, g["fps"], 0.0)
        else:
            rate = fps or g["fps"] * scale
            if not rate > 0:
                raise NeofieldError("--fps must be > 0")
            video = VideoGrid(w, h, max(1, round((t1 - t0) * rate)), rate, t0)
    if "audio" in geo:
        g = geo["audio"]
        rate = sample_rate or max(1, round(g["sample_rate"] * scale))
        if rate <= 0:
            raise NeofieldError("--sample-rate must be > 0")
        audio = AudioGrid(max(1, round((t1 - t0) * rate)), rate, t0)
    return DecodePlan(video, audio)


def render_media(field_: NeoMLPField, layout: dict, plan: DecodePlan | None = None,
                 video_stream: bool = False) -> Media:
    """Render a field on a plan's grids (default: the original grid) into :class:`Media`.

    ``layout`` is a bundle's metadata (or :meth:`Signal.layout`): coordinates,
    value maps, output ranges and geometry. Only the modalities in the plan are
    rendered; with ``video_stream`` the frames come as a generator.
    """
    plan = plan or plan_decode(layout)
    cmap = CoordinateMap.from_dict(layout["coordinates"])
    outputs, values = layout["outputs"], layout["values"]
    media = Media()
    if plan.video is not None and "video" in outputs:
        frames = render_video(field_, cmap, plan.video, ValueMap(**values["video"]), slice(*outputs["video"]))
        media.video = frames if video_stream else np.stack(list(frames))
        media.fps = plan.video.fps
        media.still = bool(layout["geometry"]["video"].get("still"))
    if plan.audio is not None and "audio" in outputs:
        media.audio = render_audio(field_, cmap, plan.audio, ValueMap(**values["audio"]), slice(*outputs["audio"]))
        media.sample_rate = plan.audio.sample_rate
    return media


def default_output(bundle_path: Path, kind: str, scale: float) -> Path:
    suffix = {"audio": ".wav", "image": ".png"}.get(kind, ".mp4")
    tag = "decoded" if scale == 1 else f"x{scale:g}"
    return bundle_path.with_name(f"{bundle_path.stem}.{tag}{suffix}")


def decode(
    bundle_path: str | Path,
    output: str | Path | None = None,
    *,
    scale: float = 1.0,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    sample_rate: int | None = None,
    start: float | None = None,
    end: float | None = None,
    force: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> Path:
    """Render a bundle's field on a grid and write it as real media.

    The output's suffix picks what is written: ``.mp4/.mkv/.mov`` video (with
    sound for audio-visual bundles), ``.wav/.flac/.ogg`` sound only (also from
    an audio-visual bundle), ``.png/.jpg`` a still image.
    """
    bundle_path = Path(bundle_path)
    b = load(bundle_path)
    output = Path(output) if output is not None else default_output(bundle_path, b.kind, scale)
    suffix = output.suffix.lower()
    writes_video = suffix in VIDEO_OUT_SUFFIXES or suffix in IMAGE_SUFFIXES
    if suffix not in VIDEO_OUT_SUFFIXES | AUDIO_OUT_SUFFIXES | IMAGE_SUFFIXES:
        raise NeofieldError(f"cannot write {suffix or 'files without a suffix'}: use "
                            f"{', '.join(sorted(VIDEO_OUT_SUFFIXES | AUDIO_OUT_SUFFIXES))} or .png")
    if writes_video and "video" not in b.meta["outputs"]:
        raise NeofieldError(f"{bundle_path} holds sound only: decode it to .wav, .flac or .ogg")
    if suffix in AUDIO_OUT_SUFFIXES and "audio" not in b.meta["outputs"]:
        raise NeofieldError(f"{bundle_path} holds no sound: decode it to .mp4, .mkv, .mov or .png")
    check_output(output, force)
    plan = plan_decode(b.meta, scale, size, fps, sample_rate, start, end)
    if suffix in AUDIO_OUT_SUFFIXES:
        plan = DecodePlan(None, plan.audio)
    elif suffix in IMAGE_SUFFIXES:
        plan = DecodePlan(plan.video, None)
    media = render_media(b.field, b.meta, plan, video_stream=True)
    with atomic_output(output, force=force) as tmp:
        if suffix in IMAGE_SUFFIXES:
            write_image(tmp, next(iter(media.video)))
        elif suffix in AUDIO_OUT_SUFFIXES:
            write_audio(tmp, media.audio, media.sample_rate)
        else:
            write_video(tmp, _counted(media.video, plan.video.frames, on_frame), media.fps,
                        media.audio, media.sample_rate)
    return output


def _counted(frames, total: int, on_frame):
    for i, frame in enumerate(frames):
        yield frame
        if on_frame:
            on_frame(i + 1, total)


# ------------------------------------------------------------------ psnr ----
def compare(original: Media, candidate: Media) -> dict:
    """PSNR per modality of ``candidate`` against ``original`` (same grids required)."""
    out: dict = {}
    if original.video is not None and candidate.video is not None:
        if original.video.shape != candidate.video.shape:
            raise NeofieldError(f"video grids differ: original {_shape(original.video)} vs {_shape(candidate.video)}")
        out["video_psnr_db"] = round(video_psnr(original.video, candidate.video), 4)
    if original.audio is not None and candidate.audio is not None:
        a, b = original.audio, candidate.audio
        if a.shape[1] != b.shape[1]:
            raise NeofieldError(f"audio channels differ: {a.shape[1]} vs {b.shape[1]}")
        n = min(len(a), len(b))
        if abs(len(a) - len(b)) > max(2048, 0.005 * len(a)):
            raise NeofieldError(f"audio lengths differ: {len(a)} vs {len(b)} samples")
        out["audio_psnr_db"] = round(audio_psnr(a[:n], b[:n]), 4)
    if not out:
        raise NeofieldError("the two inputs share no modality (one is video only, the other sound only)")
    return out


def _shape(video: np.ndarray) -> str:
    f, h, w, _ = video.shape
    return f"{w}x{h}, {f} frames"


def psnr(original: str | Path, candidate: str | Path, selection: Selection | None = None) -> dict:
    """Quality of a bundle (or a decoded file) against the original media.

    For a bundle, the original is cut with the selection stored in the bundle
    and must be the very signal that was encoded (checked by fingerprint); the
    report adds the bundle size, bits per pixel or kbps, and the compression
    ratio against the raw signal (8-bit RGB, 16-bit PCM).
    """
    candidate = Path(candidate)
    if candidate.suffix.lower() == ".nf":
        b = load(candidate)
        sel = selection or Selection.from_dict(b.meta["source"]["selection"])
        media = read_media(original, sel)
        if fingerprint(media) != b.meta["source"]["sha256"]:
            raise NeofieldError(f"{original} is not the media {candidate} was encoded from "
                                f"(it was {b.meta['source']['name']!r} with its stored selection)")
        rendered = render_media(b.field, b.meta)
        report = compare(media, rendered)
        report.update(size_report(candidate.stat().st_size, media))
        return report
    media = read_media(original, selection or Selection())
    other = read_media(candidate)
    if media.kind != other.kind and {media.kind, other.kind} != {"video", "audiovisual"}:
        raise NeofieldError(f"cannot compare {media.kind} with {other.kind}")
    return compare(media, other)


def size_report(nbytes: int, media: Media) -> dict:
    """Bytes, bits per pixel / kbps, and the ratio against the raw signal."""
    raw = 0
    out: dict = {"bytes": nbytes}
    duration = 0.0
    if media.video is not None:
        f, h, w, _ = media.video.shape
        raw += media.video.size
        out["bits_per_pixel"] = round(bits_per_pixel(nbytes, f, h, w), 5)
        duration = f / media.fps
    if media.audio is not None:
        raw += media.audio.size * 2
        duration = max(duration, len(media.audio) / media.sample_rate)
    if duration and not media.still:
        out["kbps"] = round(kbps(nbytes, duration), 2)
    out["raw_bytes"] = raw
    out["compression_ratio"] = round(raw / nbytes, 2)
    return out
