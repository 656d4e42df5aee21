"""The field an encode fits: a NeoMLP (or one of the paper's baselines) sized and tuned for the signal.

The choices that depend on the media are made here, once it is read: the preset, one latent set per
frame or per 1,024 audio samples laid over time (:mod:`neofield.fields.layouts`), and the Fourier
features' sigma of a sound's time axis, from the sound's own spectrum.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .. import options as opt
from ..errors import NeofieldError
from ..fields.gridmlp import GridField, grid_config_for
from ..fields.neogrid import NeoGridField, neogrid_for
from ..fields.layouts import TimeSegments
from ..fields.neomlp import PRESETS, NeoMLPField, build_config
from ..fields.registry import HIDDEN_TOKENS, PICTURE_TAPS, baseline_for
from ..signal import Signal, audio_rff_sigma
from .options import MAX_SEGMENTS, EncodeOptions


def default_preset(kind: str) -> str:
    """The CPU default, measured at equal time (docs/cpu-defaults.md): ``tiny`` for every kind.
    On sound too, its twice-as-fast steps beat ``small``'s width (Bach, 45 s: 36.6 vs 36.1 dB)."""
    return "tiny"


def sound_sigma(signal: Signal) -> float | None:
    """The RFF sigma of the signal's sound's time axis, from its spectral centroid
    (:func:`neofield.signal.audio_rff_sigma`); None without sound."""
    if signal.media.audio is None:
        return None
    return audio_rff_sigma(signal.media.audio, signal.sample_rate)


def rff_sigma_for(signal: Signal, preset: str) -> float | tuple[float, ...]:
    """The preset's sigma for pictures; for the sound's time axis, the sound's spectral
    centroid (:func:`sound_sigma`), measured in docs/cpu-defaults.md."""
    audio = sound_sigma(signal)
    if signal.kind == "audio":
        return audio
    video = PRESETS[preset].video_sigma
    return (video, video, audio)


def make_field(signal: Signal, preset: str, segments: int, seed: int = 0, interpolation: str = "linear",
               **overrides) -> NeoMLPField:
    """A fresh NeoMLP sized for ``signal``, with ``segments`` latent sets along time,
    blended between their centres (``linear``) or held over each slice (``nearest``)."""
    if preset not in PRESETS:
        raise NeofieldError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    opt.positive_int("--segments", segments, MAX_SEGMENTS)
    if overrides.get("rff_sigma") is None and signal.media.audio is not None:
        overrides["rff_sigma"] = rff_sigma_for(signal, preset)
    config = build_config(preset, signal.coordinate_map.in_features, signal.out_features, kind=signal.kind,
                          seed=seed, **overrides)
    torch.manual_seed(seed)
    return NeoMLPField(config, TimeSegments.over(signal, segments, interpolation))


def box_of(signal: Signal) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The field coordinates the signal's grid spans, edge to edge: x and y in [-1, 1], time over its
    duration (what latent grids are laid over)."""
    lo, hi = signal.coordinate_map.time_span(signal.duration)
    if signal.coordinate_map.x is None:
        return (lo,), (hi,)
    return (-1.0, -1.0, lo), (1.0, 1.0, hi)


def grid_shape(signal: Signal) -> dict:
    """What a latent grid is laid over: the box, the picture's nodes at its own resolution (width, height,
    frames), the sound's samples, and the outputs (the sound's are the last)."""
    picture = None
    if signal.video is not None:
        f, h, w, _ = signal.video.shape
        picture = (w, h, f)
    audio = signal.audio_channels if signal.audio is not None else 0
    low, high = box_of(signal)
    return {"low": low, "high": high, "picture": picture, "audio_samples": signal.n_audio_points if audio else None,
            "out_features": signal.out_features, "audio_outputs": audio}


def grid_field(signal: Signal, parameters: int) -> GridField:
    """``--arch grid`` with about ``parameters`` parameters (the NeoMLP's it stands in for)."""
    return GridField(grid_config_for(parameters=parameters, **grid_shape(signal)))


def neogrid_field(signal: Signal, parameters: int) -> NeoGridField:
    """``--arch neogrid`` with about ``parameters`` parameters, nearly all of them in its pyramids, the hidden
    tokens its kind of signal learns best with (:data:`~neofield.fields.registry.HIDDEN_TOKENS`), the picture's
    finest level tapped (:data:`~neofield.fields.registry.PICTURE_TAPS`), and its time axis as fine as the
    picture's motion asks (:func:`time_weight`)."""
    weight = time_weight(signal.video.numpy()) if signal.video is not None else 1.0
    return neogrid_for(parameters=parameters, hidden_tokens=HIDDEN_TOKENS[signal.kind], time_weight=weight,
                       taps=PICTURE_TAPS[signal.kind], **grid_shape(signal))


# How much finer than space a picture pyramid lays time: as much as the picture changes more from frame to frame
# than from pixel to pixel, within the range measured. At 120 s a point the evenly scaled pyramid's nodes moved to
# time paid on 2 s of bikes (a ratio of 2.30; weight 2.5: +1.43 dB at 3.5 % fewer bytes at lambda 0.03, +0.53 dB at
# 8 % fewer at 0.003) and moved away from it paid on 1 s of Big Buck Bunny (0.30; weight 0.4: +0.67 dB for 8.5 %
# more bytes at lambda 0.02, where 2.5 lost 0.87 dB): docs/rate-term.md, "Where the latents go"
TIME_WEIGHTS = (0.4, 2.5)
MOTION_FRAMES = 64  # pairs of frames measured, evenly spread over a longer clip


def time_weight(video: np.ndarray) -> float:
    """The ratio of the picture's mean absolute change from one frame to the next to its mean change from one
    pixel to the next (along x and y), within :data:`TIME_WEIGHTS`; 1 for a single frame. Over at most
    :data:`MOTION_FRAMES` pairs of frames, rounded to 1/100 (it sizes the field; the bundle stores the sizes)."""
    frames = len(video)
    if frames < 2:
        return 1.0
    change = detail = 0.0
    for i in np.unique(np.linspace(0, frames - 2, min(frames - 1, MOTION_FRAMES)).round().astype(np.int64)):
        a, b = video[i].astype(np.float32), video[i + 1].astype(np.float32)  # a pair at a time: 4K frames are big
        change += float(np.abs(b - a).mean())
        detail += (float(np.abs(np.diff(a, axis=0)).mean()) + float(np.abs(np.diff(a, axis=1)).mean())) / 2
    ratio = change / detail if detail > 0 else TIME_WEIGHTS[1]
    return round(min(max(ratio, TIME_WEIGHTS[0]), TIME_WEIGHTS[1]), 2)


def field_builder(signal: Signal, run: EncodeOptions) -> Callable[[int | None], nn.Module]:
    """``build(size)``: a fresh field of the resolved options ``run`` (:func:`neofield.codec.encoder.resolve`),
    sized by the rung rate control chose (:func:`neofield.rate.ladder`: NeoMLP's token width, FFN 4x; the
    latent grids' parameters), or else with as many parameters as the NeoMLP preset's, which a baseline
    (``--arch``) stands in for."""
    audio_sigma = sound_sigma(signal) if run.arch == "rffnet" else None

    def build(size: int | None = None) -> nn.Module:
        dims = {} if size is None or run.arch != "neomlp" else {"dim": size, "ffn_dim": 4 * size}
        neomlp = make_field(signal, run.preset, run.segments, seed=run.seed, interpolation=run.latents,
                            attention=run.attention, rff_sigma=run.rff_sigma, **dims)
        if run.arch == "neomlp":
            return neomlp
        if run.arch in ("grid", "neogrid"):
            torch.manual_seed(run.seed)
            make = grid_field if run.arch == "grid" else neogrid_field
            return make(signal, size or neomlp.num_parameters()["total"])
        return baseline_for(run.arch, signal.coordinate_map.in_features, signal.out_features,
                            neomlp.num_parameters()["total"], signal.kind, run.seed, audio_sigma)

    return build
