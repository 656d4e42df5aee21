"""Render: evaluate a field on any grid, in bounded chunks, back into samples.

A grid is the signal's own coordinate convention (``signal.py``) with another
size, frame rate or sample rate; scale 1 gives back the training grid.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .errors import NeofieldError
from .media import Media
from .options import BETWEEN
from .runtime import compiled, compiler_available, flush_denormals
from .signal import CoordinateMap, ValueMap, centre_times

# Points per forward pass. Small chunks stay in the CPU's caches: 2,048 decodes
# 2-3.5x faster than 65,536 on our 2-core machines (tiny: 112 k vs 54 k points/s,
# paper audio config: 49 k vs 16 k). A GPU wants big ones. A field whose work per
# point is small says how many points amortise its operations (``cpu_chunk``).
CPU_CHUNK, CUDA_CHUNK = 1 << 11, 1 << 16


@dataclass(frozen=True)
class VideoGrid:
    width: int
    height: int
    frames: int
    fps: float
    start: float = 0.0  # seconds: time of the first frame's interval start
    duration: float | None = None  # seconds the frames cover; None: frames / fps
    # the part of the picture the frames show, as fractions of it (left, top, right, bottom): a crop
    # renders only its own pixels, each where the whole frame's decode would have it
    window: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    # the fitted frames (frame rate, count) that a frame between two of them is blended from, by time; None:
    # the field's own picture at every time (plan_decode's ``between``)
    fitted: tuple[float, int] | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.duration is None else self.duration

    @property
    def rendered(self) -> int:
        """Pictures the field renders: every frame, or the fitted frames they are blended from."""
        if self.fitted is None:
            return self.frames
        return len({n for k in range(self.frames) for n in self.blend(k)[:2]})

    def blend(self, k: int) -> tuple[int, int, float]:
        """Frame ``k`` as fitted frames ``i``, ``j`` and ``j``'s weight: ``(1 - w) * i + w * j`` (``i == j`` at a
        fitted frame's time and beyond the first and last fitted frames' times)."""
        fps, count = self.fitted
        at = (self.start + (k + 0.5) / self.fps) * fps - 0.5  # in fitted frames, 0 at the first one's centre
        i = min(max(math.floor(at + 1e-6), 0), count - 1)
        w = min(max(at - i, 0.0), 1.0)
        if w < 1e-6 or i == count - 1:
            return i, i, 0.0
        return i, i + 1, w


@dataclass(frozen=True)
class AudioGrid:
    samples: int
    sample_rate: int
    start: float = 0.0


class Evaluator:
    """Runs a field over coordinates in chunks of a fixed size, the decoder's one inner loop.

    ``compiled`` runs the forward pass through ``torch.compile`` (inductor):
    1.7x the points per second of eager decoding on our 2-core CPUs, after
    ~13 s of compiling, so :func:`should_compile` asks for it on long decodes
    only. Every chunk then has the same shape (the last is padded), so the
    kernels are compiled once. If inductor fails, the evaluator says so in
    ``notes`` and goes on eagerly. ``on_points(n)`` is called after each chunk
    with the points it held: the progress display's unit.
    """

    def __init__(self, field: nn.Module, chunk: int | None = None, compiled: bool = False,
                 on_points: Callable[[int], None] | None = None):
        self.field = field
        self.device = next(field.parameters()).device
        self.chunk = chunk or (CUDA_CHUNK if self.device.type == "cuda" else getattr(field, "cpu_chunk", CPU_CHUNK))
        self.forward = compiled_forward(field) if compiled else field
        self.compiled, self.on_points, self.notes = compiled, on_points, []
        # a field that computes only the outputs asked for (``forward(coords, outputs)``) is asked for them
        self.picks = getattr(field, "picks_outputs", False)

    @torch.inference_mode()
    def __call__(self, coords: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """Field values at field coordinates ``(N, I) -> (N, O)`` (``outputs``: some of them), float32 on
        the CPU."""
        out = None  # allocated once the first chunk shows the output width
        with flush_denormals():  # 1.8x on a fitted field's decode (runtime.flush_denormals)
            for i in range(0, len(coords), self.chunk):
                part = coords[i:i + self.chunk]
                values = self._run(part.to(self.device), outputs).float().cpu()
                if out is None:
                    out = torch.empty(len(coords), values.shape[1])
                out[i:i + len(part)] = values
                if self.on_points:
                    self.on_points(len(part))
        if out is None:
            width = getattr(getattr(self.field, "config", None), "out_features", 1)
            out = torch.zeros(0, width)[:, outputs or slice(None)]
        return out

    def _run(self, part: torch.Tensor, outputs: slice | None) -> torch.Tensor:
        n = len(part)
        if self.compiled and n < self.chunk:  # one shape for every call: no recompiling for the last chunk
            part = torch.cat([part, part[-1:].expand(self.chunk - n, -1)])
        try:
            values = self._forward(self.forward, part, outputs)[:n]
        except Exception as e:  # inductor could not build its kernels: decode eagerly
            if not self.compiled:
                raise
            self.forward, self.compiled = self.field, False
            self.notes.append(f"torch.compile failed ({type(e).__name__}); decoded without it")
            values = self._forward(self.forward, part[:n], outputs)
        return values

    def _forward(self, forward: Callable, part: torch.Tensor, outputs: slice | None) -> torch.Tensor:
        if outputs is None:
            return forward(part)
        return forward(part, outputs) if self.picks else forward(part)[:, outputs]


def compiled_forward(field: nn.Module) -> Callable:
    """The field's forward pass through torch.compile: the parts it names as worth compiling
    (``field.compiled()``: a latent grid's network, not its reads), else all of it."""
    own = getattr(field, "compiled", None)
    return own() if callable(own) else compiled(field)


def evaluate(field: nn.Module, coords: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Field values at arbitrary field coordinates ``(N, I) -> (N, O)``, in chunks (eager)."""
    return Evaluator(field, chunk)(coords)


def _evaluator(field: nn.Module | Evaluator, chunk: int | None) -> Evaluator:
    return field if isinstance(field, Evaluator) else Evaluator(field, chunk)


ROW_POINTS = 1 << 16  # points whose coordinates a frame is rendered in at a time (~0.8 MB)


def render_video(field: nn.Module | Evaluator, cmap: CoordinateMap, grid: VideoGrid, values_map: ValueMap,
                 channels: slice = slice(0, 3), chunk: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``(height, width, 3)`` uint8 frames one at a time (a field with one picture output, a gray
    one, is written as RGB), so that a long
    or upscaled decode streams into the encoder instead of filling memory.

    Each frame is rendered a band of rows at a time into its own buffer: a
    16K frame costs its 0.8 GB of pixels, not 12 bytes of coordinates per pixel.
    With ``grid.fitted`` a frame between two fitted frames' times is their blend by time
    (:meth:`VideoGrid.blend`), each fitted frame rendered once.
    """
    run = _evaluator(field, chunk)
    left, top, right, bottom = grid.window
    xs = left + (torch.arange(grid.width, dtype=torch.float64) + 0.5) / grid.width * (right - left)
    ys = top + (torch.arange(grid.height, dtype=torch.float64) + 0.5) / grid.height * (bottom - top)
    xs, ys = xs.float(), ys.float()
    rows = max(1, ROW_POINTS // grid.width)

    def bands(t: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row, values) of each band of rows of the field's picture at time ``t``."""
        for r in range(0, grid.height, rows):
            band = ys[r:r + rows]
            n = len(band) * grid.width
            yield r, run(cmap.coords(t.expand(n), xs.repeat(len(band)), band.repeat_interleave(grid.width)),
                         channels).view(len(band), grid.width, -1)

    def to_raw(values: torch.Tensor) -> np.ndarray:
        return values_map.to_raw(values).nan_to_num_(0.0).round_().clamp_(0, 255).to(torch.uint8).numpy()

    if grid.fitted is None:
        for k in range(grid.frames):
            frame = np.empty((grid.height, grid.width, 3), np.uint8)
            for r, values in bands(centre_times(1, grid.fps, grid.start, first=k).float()):
                frame[r:r + len(values)] = to_raw(values)  # a gray field's 1 channel -> 3
            yield frame
        return
    fitted: dict[int, torch.Tensor] = {}  # the two fitted frames (float values) the last frame was blended from
    for k in range(grid.frames):
        i, j, w = grid.blend(k)
        for n in (i, j):
            if n not in fitted:
                t = centre_times(1, grid.fitted[0], first=n).float()
                fitted[n] = torch.cat([values for _, values in bands(t)])
        for n in [n for n in fitted if n not in (i, j)]:
            del fitted[n]
        frame = np.empty((grid.height, grid.width, 3), np.uint8)
        frame[:] = to_raw(fitted[i] if i == j else torch.lerp(fitted[i], fitted[j], w))
        yield frame


def render_audio(field: nn.Module | Evaluator, cmap: CoordinateMap, grid: AudioGrid, values_map: ValueMap,
                 channels: slice = slice(0, None), block: int = 1 << 16) -> np.ndarray:
    """Samples ``(samples, channels)`` float32, clipped to [-1, 1]; coordinates are
    built ``block`` samples at a time so a long sound never holds them all."""
    run = _evaluator(field, None)
    out = None
    for first in range(0, grid.samples, block):
        n = min(block, grid.samples - first)
        t = centre_times(n, grid.sample_rate, grid.start, first=first)
        values = run(cmap.coords(t).float(), channels)
        if out is None:  # the channel count is known from the first block
            out = np.empty((grid.samples, values.shape[1]), np.float32)
        out[first:first + n] = values_map.to_raw(values).nan_to_num_(0.0).clamp_(-1, 1).numpy()
    return out if out is not None else np.zeros((0, 1), np.float32)


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
        v = self.video.width * self.video.height * self.video.rendered if self.video else 0
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
                frame: float | None = None, crop: tuple[int, int, int, int] | None = None,
                between: str = "blend") -> DecodePlan:
    """Resolve the decode options against a bundle's geometry.

    ``scale`` multiplies every axis (width, height, frame rate, sample rate);
    ``scale_time`` and ``scale_rate`` set the frame-rate and sample-rate
    factors apart, and ``size``/``fps``/``sample_rate`` name values outright.
    A frame rate that does not divide the time range gives a last frame cut
    short (``VideoGrid.seconds``), so each stream lasts exactly its range.
    ``frame`` asks for one still at that time instead of a clip. ``crop`` (x, y, width, height, in pixels
    of the frames the other options give) renders that window of them alone: a decode whose cost is its area.
    ``between`` says what a frame between the fitted frames' times shows: ``blend``, the two fitted frames
    around it blended by time (what measured best: the field's own in-between frames scored 1 dB below it,
    ``benchmarks/interpolation.py``), or ``field``, the field's own picture at that time.
    """
    if between not in BETWEEN:
        raise NeofieldError(f"--between must be one of {', '.join(BETWEEN)}, not {between!r}")
    geo = meta["geometry"]
    if (size or fps or frame is not None or crop) and "video" not in geo:
        raise NeofieldError("--size, --fps, --frame and --crop apply to pictures; this bundle holds sound only")
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
        window = (0.0, 0.0, 1.0, 1.0)
        if crop is not None:
            x, y, cw, ch = crop
            if x < 0 or y < 0 or cw < 1 or ch < 1 or x + cw > w or y + ch > h:
                raise NeofieldError(f"--crop {x},{y},{cw},{ch} must lie inside the {w}x{h} frame (X,Y,W,H in its "
                                    "pixels, W and H at least 1)")
            w, h, window = cw, ch, (x / w, y / h, (x + cw) / w, (y + ch) / h)
        rate = fps or g["fps"] * (scale if scale_time is None else scale_time)
        if frame is not None:
            if not 0 <= frame < extents["video"] + 1e-9:
                raise NeofieldError(f"--frame must lie in the video, 0 <= T < {extents['video']:.3f} s")
            video = VideoGrid(w, h, 1, g["fps"], frame - 0.5 / g["fps"], window=window)
        elif g.get("still"):
            video = VideoGrid(w, h, 1, g["fps"], 0.0, window=window)
        elif t0 < extents["video"] - 1e-9:
            seconds = min(t1, extents["video"]) - t0
            # enough frames to cover the range; the last may be shown for less than 1 / rate
            video = VideoGrid(w, h, max(1, math.ceil(seconds * rate - 1e-6)), rate, t0, seconds, window)
            blended = dataclasses.replace(video, fitted=(g["fps"], g["frames"]))
            if between == "blend" and any(blended.blend(k)[2] for k in range(video.frames)):
                video = blended  # some frames fall between the fitted frames' times
    if "audio" in geo and frame is None:
        g = geo["audio"]
        rate = sample_rate or max(1, round(g["sample_rate"] * (scale if scale_rate is None else scale_rate)))
        if t0 < extents["audio"] - 1e-9:
            audio = AudioGrid(max(1, round((min(t1, extents["audio"]) - t0) * rate)), rate, t0)
    if video is None and audio is None:
        raise NeofieldError(f"nothing to decode after --start {t0:g} s")
    return DecodePlan(video, audio)


def render_media(field: nn.Module | Evaluator, layout: dict, plan: DecodePlan | None = None,
                 video_stream: bool = False) -> Media:
    """Render a field on a plan's grids (default: the original grid) into :class:`Media`.

    ``layout`` is a bundle's metadata (or :meth:`Signal.layout`): coordinates,
    value maps, output ranges and geometry. Only the modalities in the plan are
    rendered; with ``video_stream`` the frames come as a generator. ``field``
    may be an :class:`Evaluator`, for compiled decoding or progress.
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


# ------------------------------------------------------------------ costs ----
@dataclass(frozen=True)
class DecodeCost:
    """What a decode will take, known before it starts: checked against the limits, shown with ``--json``."""

    points: int  # field evaluations
    memory_bytes: int  # the most it holds at once: a frame and its encoder's copies, the whole sound
    output_bytes: int  # raw samples written (8-bit RGB, float32 sound), before the codec compresses them
    points_per_second: float  # eager speed probed on this machine
    compiled: bool = False

    @property
    def speed(self) -> float:
        """Expected points per second (compiled decoding measured 1.7x eager's speed)."""
        return self.points_per_second * (COMPILE_SPEEDUP if self.compiled else 1.0)

    @property
    def seconds(self) -> float:
        """Estimated rendering time."""
        return self.points / self.speed

    def to_dict(self) -> dict:
        return {"points": self.points, "memory_bytes": self.memory_bytes, "output_bytes": self.output_bytes,
                "points_per_second": round(self.points_per_second), "estimated_seconds": round(self.seconds, 1),
                "compiled": self.compiled}


COMPILE_SPEEDUP = 1.7  # compiled over eager decoding, tiny field, chunk 2,048, 2-core EPYC (288 k vs 165 k points/s)
COMPILE_MIN_SECONDS = 30.0  # compile a decode whose eager estimate is at least this: ~13 s of compiling pays back
FRAME_COPIES = 4  # a frame's buffer, the encoder's RGB frame and its YUV conversion, one in flight


def decode_cost(plan: DecodePlan, audio_channels: int, points_per_second: float, compiled: bool = False
                ) -> DecodeCost:
    memory = output = 0
    if plan.video is not None:
        frame = plan.video.width * plan.video.height * 3
        memory += FRAME_COPIES * frame + ROW_POINTS * 64  # the band's coordinates, values and activations
        if plan.video.fitted:  # the two fitted frames blended from, float values
            memory += 2 * 4 * frame
        output += frame * plan.video.frames
    if plan.audio is not None:
        sound = plan.audio.samples * audio_channels * 4
        memory += 2 * sound  # the rendered float32 samples and the encoder's converted copy
        output += sound
    return DecodeCost(plan.points, memory, output, points_per_second, compiled)


def probe_speed(field: nn.Module, chunks: int = 3) -> float:
    """Eager points per second of ``field`` here, from a few chunks of random coordinates (~30 ms for tiny)."""
    run = Evaluator(field)
    coords = torch.rand(run.chunk * (chunks + 1), field.config.in_features) * 2 - 1
    run(coords[:run.chunk])  # kernel set-up
    t = time.perf_counter()
    run(coords[run.chunk:])
    return run.chunk * chunks / max(time.perf_counter() - t, 1e-9)


def should_compile(mode: str, device: torch.device, eager_seconds: float) -> bool:
    """``on``; or ``auto`` on a CPU when eager rendering would take ``COMPILE_MIN_SECONDS`` or more."""
    if mode != "auto":
        return mode == "on"
    return device.type == "cpu" and eager_seconds >= COMPILE_MIN_SECONDS and compiler_available(device)
