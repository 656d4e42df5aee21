"""Grid + MLP (``--arch grid``): multiresolution latent grids read at each point, then a small MLP.

The synthesis of the neural codecs that decode cheaply (Cool-chic, C3), without attention: the detail
lives in :class:`~.grid.LatentPyramid` levels laid over the signal, the network per point is a few
hundred to a few thousand multiply-adds. A picture's pyramid spans (x, y, t); a sound's spans t; a video
with sound has both, each with a head of its own for its outputs (the loss mask scores each point on its
own stream's outputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

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
    """Latent pyramids and their heads; ``forward(coords (B, I)) -> (B, O)`` like every field."""

    def __init__(self, config: GridConfig):
        super().__init__()
        c = self.config = config
        picture_outputs = c.out_features - c.audio_outputs
        self.picture = self.audio = None
        if picture_outputs:
            self.picture = LatentPyramid(Box(c.low, c.high), c.coarse, c.fine, c.levels, c.channels)
            self.picture_head = head(self.picture.features, c.width, c.layers, picture_outputs)
        if c.audio_outputs:
            t = c.in_features - 1
            self.audio = LatentPyramid(Box((c.low[t],), (c.high[t],)), (c.audio_coarse,), (c.audio_fine,),
                                       c.audio_levels, c.audio_channels)
            self.audio_head = head(self.audio.features, c.width, c.layers, c.audio_outputs)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        out = []
        if self.picture is not None:
            out.append(self.picture_head(self.picture(coords)))
        if self.audio is not None:
            out.append(self.audio_head(self.audio(coords[:, -1:])))
        return torch.cat(out, 1) if len(out) > 1 else out[0]

    def num_parameters(self) -> dict[str, int]:
        latents = sum(p.numel() for n, p in self.named_parameters() if ".grids." in n)
        total = sum(p.numel() for p in self.parameters())
        return {"backbone": total - latents, "latents": latents, "total": total}

    def macs_per_point(self) -> dict[str, int]:
        """Multiply-adds of one point, per stream: its pyramid's reads and its head."""
        c, out = self.config, {}
        if self.picture is not None:
            out["video"] = self.picture.macs_per_point() + head_macs(self.picture.features, c.width, c.layers,
                                                                     c.out_features - c.audio_outputs)
        if self.audio is not None:
            out["audio"] = self.audio.macs_per_point() + head_macs(self.audio.features, c.width, c.layers,
                                                                   c.audio_outputs)
        return out


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
