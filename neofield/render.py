"""Render: evaluate a field on any grid, in bounded chunks, back into samples.

A grid is the signal's own coordinate convention (``signal.py``) with another
size, frame rate or sample rate; scale 1 gives back the training grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .errors import NeofieldError
from .media import Media
from .runtime import flush_denormals
from .signal import CoordinateMap, ValueMap, centre_times, video_pixel_grid

# Points per forward pass. Small chunks stay in the CPU's caches: 2,048 decodes
# 2-3.5x faster than 65,536 on our 2-core machines (tiny: 112 k vs 54 k points/s,
# paper audio config: 49 k vs 16 k). A GPU wants big ones.
CPU_CHUNK, CUDA_CHUNK = 1 << 11, 1 << 16


@dataclass(frozen=True)
class VideoGrid:
    width: int
    height: int
    frames: int
    fps: float
    start: float = 0.0  # seconds: time of the first frame's interval start
    duration: float | None = None  # seconds the frames cover; None: frames / fps

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.duration is None else self.duration


@dataclass(frozen=True)
class AudioGrid:
    samples: int
    sample_rate: int
    start: float = 0.0


@torch.inference_mode()
def evaluate(field: nn.Module, coords: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Field values at arbitrary field coordinates ``(N, I) -> (N, O)``, in chunks."""
    device = next(field.parameters()).device
    chunk = chunk or (CUDA_CHUNK if device.type == "cuda" else CPU_CHUNK)
    with flush_denormals():  # 1.8x on a fitted field's decode (runtime.flush_denormals)
        outs = [field(coords[i:i + chunk].to(device)).float().cpu() for i in range(0, len(coords), chunk)]
    return torch.cat(outs) if outs else torch.zeros(0, field.config.out_features)


def render_video(field: nn.Module, cmap: CoordinateMap, grid: VideoGrid, values_map: ValueMap,
                 channels: slice = slice(0, 3), chunk: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``(height, width, 3)`` uint8 frames one at a time, so that a long
    or upscaled decode streams into the encoder instead of filling memory."""
    xs, ys = video_pixel_grid(grid.width, grid.height)
    for k in range(grid.frames):
        t = centre_times(1, grid.fps, grid.start, first=k).float().expand(len(xs))
        values = evaluate(field, cmap.coords(t, xs, ys), chunk)[:, channels]
        raw = values_map.to_raw(values).round_().clamp_(0, 255).to(torch.uint8)
        yield raw.view(grid.height, grid.width, 3).numpy()


def render_audio(field: nn.Module, cmap: CoordinateMap, grid: AudioGrid, values_map: ValueMap,
                 channels: slice = slice(0, None), block: int = 1 << 16) -> np.ndarray:
    """Samples ``(samples, channels)`` float32, clipped to [-1, 1]; coordinates are
    built ``block`` samples at a time so a long sound never holds them all."""
    out = []
    for first in range(0, grid.samples, block):
        n = min(block, grid.samples - first)
        t = centre_times(n, grid.sample_rate, grid.start, first=first)
        values = evaluate(field, cmap.coords(t).float())[:, channels]
        out.append(values_map.to_raw(values).clamp_(-1, 1))
    return torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)


# ------------------------------------------------------------------ plans ----
@dataclass(frozen=True)
class DecodePlan:
    """The grids a decode renders, derived from a bundle's geometry and the options.

    Each stream keeps its own extent: a clip whose sound runs 32 ms past its
    last frame decodes to exactly as many frames and samples as it had.
    """

    video: VideoGrid | None
    audio: AudioGrid | None

    @property
    def points(self) -> int:
        v = self.video.width * self.video.height * self.video.frames if self.video else 0
        return v + (self.audio.samples if self.audio else 0)

    def to_dict(self) -> dict:
        out = {}
        if self.video:
            out["video"] = {**asdict(self.video), "seconds": self.video.seconds}
        if self.audio:
            out["audio"] = {**asdict(self.audio), "seconds": self.audio.samples / self.audio.sample_rate}
        return out


def stream_extents(geometry: dict) -> dict[str, float]:
    """Seconds each stream of the original covers, from 0 (frames / fps, samples / rate)."""
    out = {}
    if "video" in geometry:
        g = geometry["video"]
        out["video"] = 1.0 / g["fps"] if g.get("still") else g["frames"] / g["fps"]
    if "audio" in geometry:
        g = geometry["audio"]
        out["audio"] = g["samples"] / g["sample_rate"]
    return out


def plan_decode(meta: dict, scale: float = 1.0, size: tuple[int, int] | None = None, fps: float | None = None,
                sample_rate: int | None = None, start: float | None = None, end: float | None = None,
                scale_time: float | None = None, scale_rate: float | None = None,
                frame: float | None = None) -> DecodePlan:
    """Resolve the decode options against a bundle's geometry.

    ``scale`` multiplies every axis (width, height, frame rate, sample rate);
    ``scale_time`` and ``scale_rate`` set the frame-rate and sample-rate
    factors apart, and ``size``/``fps``/``sample_rate`` name values outright.
    A frame rate that does not divide the time range gives a last frame cut
    short (``VideoGrid.seconds``), so each stream lasts exactly its range.
    ``frame`` asks for one still at that time instead of a clip.
    """
    geo = meta["geometry"]
    if (size or fps or frame is not None) and "video" not in geo:
        raise NeofieldError("--size, --fps and --frame apply to pictures; this bundle holds sound only")
    if (sample_rate or scale_rate) and "audio" not in geo:
        raise NeofieldError("--sample-rate and --scale-rate apply to sound; this bundle holds no sound")
    duration = geo["duration"]
    t0 = 0.0 if start is None else start
    t1 = duration if end is None else end
    if t0 < 0 or t1 > duration + 1e-6 or t1 <= t0:
        raise NeofieldError(f"--start/--end must satisfy 0 <= start < end <= {duration:.3f} s")
    extents = stream_extents(geo)
    video = audio = None
    if "video" in geo:
        g = geo["video"]
        w, h = size or (max(1, round(g["width"] * scale)), max(1, round(g["height"] * scale)))
        rate = fps or g["fps"] * (scale if scale_time is None else scale_time)
        if frame is not None:
            if not 0 <= frame < extents["video"] + 1e-9:
                raise NeofieldError(f"--frame must lie in the video, 0 <= T < {extents['video']:.3f} s")
            video = VideoGrid(w, h, 1, g["fps"], frame - 0.5 / g["fps"])
        elif g.get("still"):
            video = VideoGrid(w, h, 1, g["fps"], 0.0)
        elif t0 < extents["video"] - 1e-9:
            seconds = min(t1, extents["video"]) - t0
            # enough frames to cover the range; the last may be shown for less than 1 / rate
            video = VideoGrid(w, h, max(1, math.ceil(seconds * rate - 1e-6)), rate, t0, seconds)
    if "audio" in geo and frame is None:
        g = geo["audio"]
        rate = sample_rate or max(1, round(g["sample_rate"] * (scale if scale_rate is None else scale_rate)))
        if t0 < extents["audio"] - 1e-9:
            audio = AudioGrid(max(1, round((min(t1, extents["audio"]) - t0) * rate)), rate, t0)
    if video is None and audio is None:
        raise NeofieldError(f"nothing to decode after --start {t0:g} s")
    return DecodePlan(video, audio)


def render_media(field: nn.Module, layout: dict, plan: DecodePlan | None = None,
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
        frames = render_video(field, cmap, plan.video, ValueMap(**values["video"]), slice(*outputs["video"]))
        media.video = frames if video_stream else np.stack(list(frames))
        media.fps = plan.video.fps
        media.still = bool(layout["geometry"]["video"].get("still"))
    if plan.audio is not None and "audio" in outputs:
        media.audio = render_audio(field, cmap, plan.audio, ValueMap(**values["audio"]), slice(*outputs["audio"]))
        media.sample_rate = plan.audio.sample_rate
    return media
