"""Where a fit looks: a picture's points drawn more often where the field is still wrong.

A fit that draws its pixels uniformly spends most of them where the field is already right (a sky, a
wall) and few on the edges and textures that hold the error. :class:`ErrorMap` keeps a running squared
error for every tile of 8x8 pixels of every frame, updated from the points each step fits. A step draws
a tile from a mix of two densities, uniform over pixels (a share of 0.2) and proportional to the tile's
pixels times the square root of its error (0.8), then a pixel uniformly inside the tile. Each point is
weighted by ``1 / (pixels * q)``, ``q`` its chance of being drawn, so the weighted loss is still, in
expectation, the plain MSE over every pixel: the fit aims at the same target as before, with less noise
where the error is. The uniform share keeps every tile seen, so no error in the map stays stale for long.

Measured on 2 s of bikes at 320x136 (docs/rate-term.md, "Points drawn by their error, built in"): at the top
of the rate-distortion curve +0.17-0.25 dB at equal steps over four fits; level lower down, and level at equal
time on the RD curves of bikes and Big Buck Bunny. Sound stays uniform (drawn by error it measured level on
Bach and unresolved on Big Buck Bunny).

Pure tensor arithmetic on the CPU, below the signal that uses it; it knows nothing of fields or media.
"""

from __future__ import annotations

import math

import torch

TILE = 8  # pixels on a side of a tile
UNIFORM_SHARE = 0.2  # of the draws, uniform over pixels (measured at 0.05-0.5: +0.19-0.25 dB, 0.2 best)
KEEP = 0.7  # a tile's running error keeps this much of its past each time it is seen
MAX_TILES = 1 << 18
"""Tiles at most (1 MB of errors). A longer or larger clip's tiles span several frames, so that a step's
draw of 16,384 points stays ~2-3 ms on 2 cores (2.1 ms from 2 s of bikes at 320x136, 40,800 tiles of one
frame; 2.7 ms from 2 s of 720p, 216,000 tiles of 4 frames; 19 ms from its 864,000 tiles of one frame)."""


def _extents(length: int, span: int) -> torch.Tensor:
    """How many of ``length`` cells each tile of ``span`` cells covers (the last may be cut short)."""
    starts = torch.arange(0, length, span)
    return (length - starts).clamp_max(span)


class ErrorMap:
    """Each tile's running squared error (per channel, in field units), and draws of pixels by it.

    The video's ``frames x height x width`` pixels are cut into tiles of ``TILE x TILE`` pixels and
    ``span`` frames (1 unless the clip has more than ``max_tiles`` tiles of one frame). Tiles are
    numbered frame-tile major, then row, then column.
    """

    def __init__(self, frames: int, height: int, width: int, *, tile: int = TILE,
                 uniform_share: float = UNIFORM_SHARE, max_tiles: int = MAX_TILES):
        if min(frames, height, width, tile) < 1 or not 0.0 < uniform_share <= 1.0:
            raise ValueError(f"an error map of {frames}x{height}x{width} pixels in tiles of {tile}, "
                             f"{uniform_share} drawn uniformly, cannot be drawn from")
        self.tile, self.uniform_share = tile, uniform_share
        rows, cols = _extents(height, tile), _extents(width, tile)
        self.span = max(1, math.ceil(frames * len(rows) * len(cols) / max_tiles))  # frames per tile
        spans = _extents(frames, self.span)
        self._extent = (spans, rows, cols)
        self.grid = (len(spans), len(rows), len(cols))
        self.pixels = frames * height * width
        self.size = (spans[:, None, None] * rows[None, :, None] * cols[None, None, :]).reshape(-1).float()
        self._uniform = self.size / self.pixels  # each tile's chance under a uniform draw
        self.error = torch.ones(len(self.size))  # all alike: the first draws are uniform over pixels

    def __len__(self) -> int:
        return len(self.error)

    def density(self) -> torch.Tensor:
        """Each tile's chance of being drawn (summing to 1)."""
        by_error = self.size * self.error.sqrt()
        total = float(by_error.sum())
        if not (math.isfinite(total) and total > 0):
            return self._uniform
        return torch.add(self._uniform, by_error, alpha=(1 - self.uniform_share) / total) \
            .sub_(self._uniform, alpha=1 - self.uniform_share)

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``n`` pixels: their frame, row and column, the tile each lies in, and its importance weight
        ``1 / (pixels * q)`` (1 for a uniform draw), which makes a weighted mean an unbiased MSE."""
        density = self.density()
        cdf = density.cumsum(0)
        tile = torch.searchsorted(cdf, torch.rand(n, generator=generator) * cdf[-1],
                                  right=True).clamp_max(len(cdf) - 1)
        tf, rest = tile // (self.grid[1] * self.grid[2]), tile % (self.grid[1] * self.grid[2])
        ty, tx = rest // self.grid[2], rest % self.grid[2]
        where = torch.rand(n, 3, generator=generator)
        spans, rows, cols = self._extent
        frame = tf * self.span + _inside(where[:, 0], spans.index_select(0, tf))
        row = ty * self.tile + _inside(where[:, 1], rows.index_select(0, ty))
        col = tx * self.tile + _inside(where[:, 2], cols.index_select(0, tx))
        weight = self._uniform.index_select(0, tile) / density.index_select(0, tile)
        return frame, row, col, tile, weight

    @torch.no_grad()
    def update(self, tile: torch.Tensor, error: torch.Tensor) -> None:
        """Fold a step's squared errors (one per drawn point, per channel) into the tiles they fell in."""
        error = error.detach().to("cpu", torch.float32)
        count = torch.bincount(tile, minlength=len(self.error)).float()
        total = torch.zeros_like(self.error).index_add_(0, tile, error)
        mean = total / count.clamp_min(1)
        self.error = torch.where(count > 0, self.error.mul(KEEP).add_(mean, alpha=1 - KEEP), self.error)

    def load(self, error: torch.Tensor) -> None:
        """Take a checkpoint's errors (a fit resumed draws exactly as the one it continues would have)."""
        if not (isinstance(error, torch.Tensor) and error.shape == self.error.shape and error.is_floating_point()):
            shape = tuple(error.shape) if isinstance(error, torch.Tensor) else type(error).__name__
            raise ValueError(f"an error map of {shape}, not {tuple(self.error.shape)}")
        self.error = error.detach().to("cpu", torch.float32).clone()


def _inside(u: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
    """A cell drawn uniformly from each tile's ``extent`` cells, from uniform ``u`` in [0, 1)."""
    return torch.minimum((u * extent).long(), extent - 1)
