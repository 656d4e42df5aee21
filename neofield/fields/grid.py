"""Multiresolution latent grids: features laid over a signal's axes at several resolutions.

A :class:`LatentPyramid` holds ``levels`` grids over the same box of field coordinates, each
``channels`` deep: over (x, y, t) for pictures, over t for sound. A coordinate reads each level by
linear interpolation (bilinear, trilinear: 2 or 8 nodes a level), so a point costs a few multiply-adds
per feature and one training step moves only the nodes near its points. The levels' resolutions grow
by a constant factor from ``coarse`` up to ``fine`` nodes per axis; node ``i`` of an ``n``-node axis
sits at the centre of the ``i``-th of ``n`` equal slices of the box, so a level as fine as the signal
has a node on every pixel centre and frame time (and decodes between them at any resolution).

This is the synthesis of Cool-chic and C3 without their convolutions, and Instant-NGP's grids without
the hashing: the component neofield's cheap fields are built of (:mod:`.gridmlp`, :mod:`.neocells`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def level_sizes(coarse: tuple[int, ...], fine: tuple[int, ...], levels: int) -> list[tuple[int, ...]]:
    """Nodes per axis of each level, from ``coarse`` up to ``fine`` by a constant factor per axis (an axis
    whose ``fine`` is at most its ``coarse`` keeps ``fine`` nodes at every level)."""
    sizes = []
    for level in range(levels):
        share = level / (levels - 1) if levels > 1 else 1.0
        sizes.append(tuple(f if f <= c else min(f, max(c, round(c * (f / c) ** share))) for c, f in zip(coarse, fine)))
    return sizes


def pyramid_parameters(coarse: tuple[int, ...], fine: tuple[int, ...], levels: int, channels: int) -> int:
    """Parameters of the pyramid :class:`LatentPyramid` would make, computed without making it."""
    return channels * sum(math.prod(s) for s in level_sizes(coarse, fine, levels))


@dataclass(frozen=True)
class Box:
    """The field coordinates a pyramid spans, per input axis: ``low[a]`` to ``high[a]`` (slice edges)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def normalise(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates ``(B, I)`` as grid_sample's ``[-1, 1]`` (edges of the outer slices)."""
        low = coords.new_tensor(self.low)
        high = coords.new_tensor(self.high)
        return (coords.float() - low) / (high - low) * 2 - 1


class LatentPyramid(nn.Module):
    """``levels`` grids of ``channels`` features over a :class:`Box`; ``forward`` reads all of them at each
    coordinate: ``(B, I) -> (B, levels * channels)``.

    Grids are stored as ``(channels, *nodes)`` with the axes reversed (t, y, x), grid_sample's order, and
    start uniform in ``±init`` (Instant-NGP's start: the head sees near-zero features and the grids grow
    where the signal needs them).
    """

    def __init__(self, box: Box, coarse: tuple[int, ...], fine: tuple[int, ...], levels: int, channels: int,
                 init: float = 1e-2):
        super().__init__()
        if len(coarse) != len(box.low) or len(fine) != len(box.low):
            raise ValueError("one coarse and one fine size per axis of the box")
        self.box, self.channels = box, channels
        self.sizes = level_sizes(coarse, fine, levels)
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(channels, *reversed(size)).uniform_(-init, init)) for size in self.sizes)

    @property
    def features(self) -> int:
        return len(self.grids) * self.channels

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        u = self.box.normalise(coords)
        axes = u.shape[1]
        if axes == 1:  # a 1-D grid read as a 2-D one of height 1
            where = torch.stack([u[:, 0], torch.zeros_like(u[:, 0])], -1).view(1, 1, -1, 2)
        else:
            where = u.view(1, 1, 1, -1, axes)
        out = []
        for grid in self.grids:
            g = grid[None] if axes > 1 else grid[None, :, None, :]
            sample = F.grid_sample(g.to(u.dtype), where, mode="bilinear", padding_mode="border",
                                   align_corners=False)
            out.append(sample.reshape(self.channels, -1))
        return torch.cat(out, 0).t()

    def macs_per_point(self) -> int:
        """Multiply-adds of one read: each feature blends 2**axes nodes."""
        return self.features * 2 ** len(self.box.low)
