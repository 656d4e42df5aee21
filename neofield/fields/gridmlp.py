"""Grid + MLP (``--arch grid``): multiresolution latent grids read at each point, then a small MLP.

The synthesis of the neural codecs that decode cheaply (Cool-chic, C3), without attention: the detail
lives in :class:`~.grid.LatentPyramid` levels laid over the signal, the network per point is a few
hundred to a few thousand multiply-adds. A picture's pyramid spans (x, y, t); a sound's spans t; a video
with sound has both, each with a head of its own for its outputs (the loss mask scores each point on its
own stream's outputs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import runtime
from .grid import Box, LatentPyramid, pyramid_parameters


@dataclass(frozen=True)
class GridConfig:
    """A grid field: the pyramid over the picture's axes (``coarse``/``fine`` nodes per input axis, ``levels``,
    ``channels``) and, for sound, over time (``audio_*``); heads of ``layers`` linear layers of ``width``."""

    in_features: int
    out_features: int
    low: tuple[float, ...]  # the box the pyramids span, per input axis (field coordinates)
    high: tuple[float, ...]
    coarse: tuple[int, ...] = ()  # picture pyramid, per input axis (x, y, t); () for sound alone
    fine: tuple[int, ...] = ()
    levels: int = 6
    channels: int = 2
    audio_outputs: int = 0  # the last outputs come from the sound's pyramid (0: no sound)
    audio_coarse: int = 16
    audio_fine: int = 1024
    audio_levels: int = 8
    audio_channels: int = 2
    width: int = 32
    layers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def head(features: int, width: int, layers: int, outputs: int) -> nn.Sequential:
    """``layers`` linear layers, ``width`` wide, ReLU between: the per-point network."""
    dims = [features] + [width] * (layers - 1) + [outputs]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def head_macs(features: int, width: int, layers: int, outputs: int) -> int:
    dims = [features] + [width] * (layers - 1) + [outputs]
    return sum(a * b for a, b in zip(dims, dims[1:]))


class GridField(nn.Module):
    """Latent pyramids and their heads; ``forward(coords (B, I)) -> (B, O)`` like every field.

    The pyramids are the field's latents (``latents.picture``, ``latents.audio``: the bundle stores them as
    its latent group, at ``--latent-bits``), the heads its backbone (``heads.picture``, ``heads.audio``)."""

    cpu_chunk, picks_outputs = 16384, True  # as NeoGridField's (neofield.fields.neogrid), the same reads

    def __init__(self, config: GridConfig):
        super().__init__()
        c = self.config = config
        picture_outputs = c.out_features - c.audio_outputs
        self.latents, self.heads = nn.ModuleDict(), nn.ModuleDict()
        if picture_outputs:
            self.latents["picture"] = LatentPyramid(Box(c.low, c.high), c.coarse, c.fine, c.levels, c.channels)
            self.heads["picture"] = head(self.latents["picture"].features, c.width, c.layers, picture_outputs)
        if c.audio_outputs:
            t = c.in_features - 1
            self.latents["audio"] = LatentPyramid(Box((c.low[t],), (c.high[t],)), (c.audio_coarse,),
                                                  (c.audio_fine,), c.audio_levels, c.audio_channels)
            self.heads["audio"] = head(self.latents["audio"].features, c.width, c.layers, c.audio_outputs)

    def forward(self, coords: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """``(B, I) -> (B, O)``; ``outputs`` (a slice of them) reads and runs only the streams it touches: a
        video with sound's pictures skip its sound's pyramid and head."""
        return self._forward(coords, outputs, self.heads)

    def streams(self, outputs: slice | None = None) -> list[str]:
        """The pyramids and heads a forward pass of ``outputs`` (all by default) runs, in output order."""
        picture = self.config.out_features - self.config.audio_outputs
        wanted = range(self.config.out_features)[outputs if outputs is not None else slice(None)]
        touched = {"picture": wanted.start < picture, "audio": wanted.stop > picture}
        return [name for name in ("picture", "audio") if name in self.latents and (outputs is None or touched[name])]

    def _forward(self, coords: torch.Tensor, outputs: slice | None, heads) -> torch.Tensor:
        names = self.streams(outputs)
        out = [heads[name](self.latents[name](coords if name == "picture" else coords[:, -1:])) for name in names]
        y = torch.cat(out, 1) if len(out) > 1 else out[0]
        if outputs is None:
            return y
        wanted = range(self.config.out_features)[outputs]
        first = 0 if names[0] == "picture" else self.config.out_features - self.config.audio_outputs
        return y[:, wanted.start - first:wanted.stop - first]

    def compiled(self):
        """The forward pass for a compiled decode: the heads through torch.compile, the reads eager
        (inductor's grid_sample ran at half the speed of ATen's)."""
        heads = {name: runtime.compiled(h) for name, h in self.heads.items()}
        return lambda coords, outputs=None: self._forward(coords, outputs, heads)

    def num_parameters(self) -> dict[str, int]:
        latents = sum(p.numel() for p in self.latents.parameters())
        total = sum(p.numel() for p in self.parameters())
        return {"backbone": total - latents, "latents": latents, "total": total}


def grid_parameters(c: GridConfig) -> int:
    """Parameters of the field :class:`GridField` would make, computed without making it."""
    n, picture_outputs = 0, c.out_features - c.audio_outputs

    def head_parameters(features: int, outputs: int) -> int:
        dims = [features] + [c.width] * (c.layers - 1) + [outputs]
        return sum(a * b + b for a, b in zip(dims, dims[1:]))

    if picture_outputs:
        n += pyramid_parameters(c.coarse, c.fine, c.levels, c.channels)
        n += head_parameters(c.levels * c.channels, picture_outputs)
    if c.audio_outputs:
        n += pyramid_parameters((c.audio_coarse,), (c.audio_fine,), c.audio_levels, c.audio_channels)
        n += head_parameters(c.audio_levels * c.audio_channels, c.audio_outputs)
    return n


PICTURE_LEVELS, AUDIO_LEVELS, CHANNELS = 6, 8, 2
AUDIO_SHARE = 0.2  # the least share of a video-with-sound field's parameters its sound's pyramid gets (registry)


def grid_config_for(low: tuple[float, ...], high: tuple[float, ...], picture: tuple[int, ...] | None,
                    audio_samples: int | None, out_features: int, audio_outputs: int, parameters: int,
                    width: int = 32, layers: int = 2, channels: int = CHANNELS,
                    network: int | None = None, time_weight: float = 1.0) -> GridConfig:
    """A grid field with about ``parameters`` parameters over a signal of ``picture`` nodes per axis at its
    own resolution (width, height, frames) and ``audio_samples`` samples: its finest level is the signal's
    resolution scaled down evenly until the pyramid fits, the coarsest 1/32 of it in space (1/8 in time,
    1/2048 for sound). A video with sound shares the budget by points. ``network`` is what the per-point
    network takes of the budget, where the caller has counted it (NeoGrid's layer); else the heads' estimate.
    ``time_weight``: the picture's time axis scaled as if it had this many times its frames (never finer than
    its frames), so that the time axis keeps more of its resolution than space does."""
    def fit(full: tuple[int, ...], shares: tuple[int, ...], levels: int, budget: float,
            weights: tuple[float, ...]) -> tuple[tuple, tuple]:
        coarse = tuple(max(2, round(n * w) // s) for n, s, w in zip(full, shares, weights))
        top = tuple(max(n, c) for n, c in zip(full, coarse))  # no axis finer than the signal (or its coarsest)

        def fine_at(scale: float) -> tuple[int, ...]:
            return tuple(min(t, max(c, round(n * w * scale))) for n, w, c, t in zip(full, weights, coarse, top))

        lo, hi = 0.0, 1.0
        for _ in range(40):  # the largest even scale whose pyramid fits the budget
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if pyramid_parameters(coarse, fine_at(mid), levels, channels) <= budget else (lo, mid)
        return coarse, fine_at(lo)

    if network is None:
        network = 2 * (width * (PICTURE_LEVELS * channels + width + 4))  # about what the heads take
    budget = max(parameters - network, 64)
    picture_points = math.prod(picture) if picture else 0
    audio_points = audio_samples or 0
    share = picture_points / max(picture_points + audio_points, 1)
    if picture_points and audio_points:
        share = min(share, 1 - AUDIO_SHARE)
    kw: dict = {}
    if picture:
        kw["coarse"], kw["fine"] = fit(picture, (32, 32, 8), PICTURE_LEVELS, budget * share, (1.0, 1.0, time_weight))
        kw.update(levels=PICTURE_LEVELS, channels=channels)
    if audio_outputs:
        (c,), (f,) = fit((audio_points,), (2048,), AUDIO_LEVELS, budget * (1 - share) if picture else budget, (1.0,))
        kw.update(audio_coarse=c, audio_fine=f, audio_levels=AUDIO_LEVELS, audio_channels=channels)
    return GridConfig(len(low), out_features, tuple(low), tuple(high), audio_outputs=audio_outputs, width=width,
                      layers=layers, **kw)
