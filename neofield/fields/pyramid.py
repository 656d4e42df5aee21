"""A latent layout of pyramids: latent grids over space and time at several resolutions.

:class:`PyramidLayout` lays a table of latents (:class:`~.layouts.Latents`, one row per grid node, each
``channels`` wide) over the signal as one or more :class:`Pyramid` s: a picture's over (x, y, t), a
sound's over t. A coordinate reads each level of each pyramid by linear interpolation (2 nodes a level
over t, 8 over x, y, t), and each level read is one latent token of the field
(:class:`~.neogrid.NeoGridField` turns them into NeoMLP's hidden tokens). The levels' resolutions grow
by a constant factor from ``coarse`` to ``fine`` nodes per axis (:func:`~.grid.level_sizes`); node ``i``
of an ``n``-node axis sits at the centre of the ``i``-th of ``n`` equal slices of the pyramid's box, so
a level as fine as the signal has a node on every pixel centre and frame time.

A pyramid over two axes or more may also read its finest ``taps`` levels half a node away along its first two
axes (x and y), both ways: four more tokens a level tapped. The field's linear map then mixes five reads of
one grid, a filter over its latents learned with the rest, and the picture it draws has breaks between
nodes where bilinear interpolation has them only on nodes: finer detail from the same latents. On 2 s of bikes
(the finest level tapped, 3,000 steps): +0.80 dB at 2.4 % fewer bytes at lambda 0.003, in about the same time
(docs/rate-term.md, "Taps").

It is a :class:`~.layouts.LatentLayout` like today's time segments: the backbone, the fit loop, the
renderer and the bundle take it through the same protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .grid import level_sizes, read_grids


@dataclass(frozen=True)
class Pyramid:
    """``levels`` grids over input axes ``axes`` (indices into the coordinates), spanning ``low`` to ``high``
    (slice edges, field units), from ``coarse`` to ``fine`` nodes per axis."""

    axes: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    coarse: tuple[int, ...]
    fine: tuple[int, ...]
    levels: int
    taps: int = 0  # the finest levels also read half a node away along the first two axes, both ways

    # the four taps of a tapped level, in its nodes along (x, y)
    TAP_OFFSETS: ClassVar[tuple[tuple[float, float], ...]] = ((0.5, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.0, -0.5))

    @property
    def tokens(self) -> int:
        """Tokens a coordinate reads of this pyramid: one a level, four more a tapped level."""
        return self.levels + len(self.TAP_OFFSETS) * self.taps

    def tap_shifts(self, size: tuple[int, ...]) -> list[tuple[float, ...]]:
        """A tapped level's four offsets in grid_sample's units (a node is ``2 / n`` of them), per axis."""
        return [tuple(o * 2 / n for o, n in zip(offset, size)) + (0.0,) * (len(size) - 2)
                for offset in self.TAP_OFFSETS]

    @property
    def sizes(self) -> list[tuple[int, ...]]:
        return level_sizes(self.coarse, self.fine, self.levels)

    @property
    def nodes(self) -> int:
        return sum(math.prod(s) for s in self.sizes)

    def to_dict(self) -> dict:
        d = {"axes": list(self.axes), "low": list(self.low), "high": list(self.high),
             "coarse": list(self.coarse), "fine": list(self.fine), "levels": self.levels}
        return {**d, "taps": self.taps} if self.taps else d  # an untapped pyramid's entry is format 7's

    @classmethod
    def from_dict(cls, d: dict) -> Pyramid:
        return cls(tuple(d["axes"]), tuple(float(v) for v in d["low"]), tuple(float(v) for v in d["high"]),
                   tuple(d["coarse"]), tuple(d["fine"]), d["levels"], d.get("taps", 0))

    def grid_units(self, coords: torch.Tensor) -> torch.Tensor:
        """The pyramid's axes of ``coords`` as grid_sample's ``[-1, 1]`` (edges of the outer slices)."""
        c = coords[:, list(self.axes)].float()
        low, high = c.new_tensor(self.low), c.new_tensor(self.high)
        return (c - low) / (high - low) * 2 - 1


def _strides(size: tuple[int, ...]) -> list[int]:
    """Row strides of a level's axes (x first) in its (t, y, x) row-major block."""
    return [math.prod(size[:a]) for a in range(len(size))]


MAX_LEVELS = 32
MAX_CHANNELS = 64


@dataclass(frozen=True)
class PyramidLayout:
    """Latent grids at several resolutions (module docstring). Rows of the table are grid nodes, pyramid by
    pyramid, level by level, each level's nodes in (t, y, x) row-major order; a row holds one token of
    ``channels`` values."""

    type: ClassVar[str] = "pyramid"

    pyramids: tuple[Pyramid, ...]
    channels: int = 2

    @property
    def sets(self) -> int:
        return sum(p.nodes for p in self.pyramids)

    @property
    def tokens(self) -> int:
        """Tokens a coordinate reads: one per level of every pyramid, four more per tapped level."""
        return sum(p.tokens for p in self.pyramids)

    def _levels(self):
        """(pyramid, first row, nodes per axis) of every level, in table order."""
        first = 0
        for p in self.pyramids:
            for size in p.sizes:
                yield p, first, size
                first += math.prod(size)

    def spans(self) -> list[tuple[int, int]]:
        """Each level's rows of the table, ``(first, end)``, in table order."""
        return [(first, first + math.prod(size)) for _, first, size in self._levels()]

    def blocks(self) -> tuple[tuple[int, int, int], ...]:
        """The table's blocks, ``(first row, end row, channel)``: each level's rows, one channel at a time.
        A fit leaves each level's values spread differently (the coarse ones wide, the fine ones narrow), so
        the rate term prices them, and the bundle codes them, block by block."""
        return tuple((a, b, c) for a, b in self.spans() for c in range(self.channels))

    def block_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each block's grid, ``(t, y, x)`` (as many axes as its pyramid), in :meth:`blocks`' order: the
        entropy coder takes a node's neighbours from it (:func:`neofield.entropy.fit_block`)."""
        return tuple(tuple(reversed(size)) for _, _, size in self._levels() for _ in range(self.channels))

    def gather(self, table: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """``(B, tokens, channels)``: every level read at every coordinate (:func:`~.grid.read_grids`: linear
        interpolation, clamped at the borders), pyramid by pyramid, each one's levels and then its taps (each
        tapped level at its four offsets), laid level-major in memory so that ``reshape(B, -1)`` is a
        view a matrix product takes as it is."""
        levels = list(self._levels())
        # one split, not a slice per level: a slice's backward writes a gradient the size of the whole table,
        # which autograd then adds up level by level; the split's writes it once (the same values, exactly)
        parts = table.reshape(len(table), -1).split([math.prod(size) for _, _, size in levels])
        out = []
        for p in self.pyramids:
            grids = [part.t().reshape(self.channels, *reversed(size)) for (q, _, size), part in zip(levels, parts)
                     if q is p]
            u = p.grid_units(coords)
            out += read_grids(grids, u)
            for grid, size in zip(grids[len(grids) - p.taps:], p.sizes[p.levels - p.taps:]):
                for shift in p.tap_shifts(size):
                    out += read_grids([grid], u + u.new_tensor(shift))
        return torch.stack(out).permute(2, 0, 1)

    def _reads(self):
        """(pyramid, first row, nodes per axis, shift) of every read a token makes, in :meth:`gather`'s order:
        each level unshifted, then each tapped level at its four shifts (grid units)."""
        levels = list(self._levels())
        for p in self.pyramids:
            mine = [(first, size) for q, first, size in levels if q is p]
            yield from ((p, first, size, None) for first, size in mine)
            for first, size in mine[len(mine) - p.taps:]:
                yield from ((p, first, size, shift) for shift in p.tap_shifts(size))

    def rows(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, K)`` rows and weights: each token's 2**axes nodes around each coordinate (a tap's around its
        shifted one). ``gather`` is the weighted sum of these rows, token by token."""
        ids, weights = [], []
        for p, first, size, shift in self._reads():
            u = p.grid_units(coords)
            if shift is not None:
                u = u + u.new_tensor(shift)
            n = u.new_tensor(size)
            pos = ((u + 1) / 2 * n - 0.5).clamp(min=torch.zeros_like(n), max=n - 1)
            i0 = pos.floor()
            frac = pos - i0
            i0 = i0.long()
            i1 = torch.minimum(i0 + 1, (n - 1).long())
            strides = _strides(size)
            for corner in range(2 ** len(size)):
                index = torch.zeros(len(coords), dtype=torch.long)
                weight = torch.ones(len(coords))
                for a in range(len(size)):
                    upper = (corner >> a) & 1
                    index += (i1[:, a] if upper else i0[:, a]) * strides[a]
                    weight = weight * (frac[:, a] if upper else 1 - frac[:, a])
                ids.append(first + index)
                weights.append(weight)
        return torch.stack(ids, 1), torch.stack(weights, 1)

    def rows_for(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Every node whose interpolation reaches into the box ``low <= coords <= high``: per level, the
        nodes between those around its corners (a tapped level's: around its corners moved out by half a node)."""
        out = []
        lo_c, hi_c = torch.as_tensor(low, dtype=torch.float32)[None], torch.as_tensor(high, dtype=torch.float32)[None]
        for p, first, size, shift in self._reads():
            n = torch.tensor(size, dtype=torch.float32)
            spans = []
            for c in (lo_c, hi_c):
                u = p.grid_units(c)[0]
                if shift is not None:
                    u = u + u.new_tensor(shift)
                pos = ((u + 1) / 2 * n - 0.5).clamp(min=torch.zeros_like(n), max=n - 1)
                spans.append(pos)
            a0 = spans[0].floor().long()
            a1 = torch.minimum(spans[1].floor().long() + 1, (n - 1).long())
            mesh = torch.meshgrid(*[torch.arange(int(a0[a]), int(a1[a]) + 1) for a in range(len(size))],
                                  indexing="ij")
            strides = _strides(size)
            index = sum(m * s for m, s in zip(mesh, strides))
            out.append(first + index.reshape(-1))
        return torch.cat(out).unique()

    def num_parameters(self, tokens: int, dim: int) -> int:
        return self.sets * tokens * dim

    def macs_per_point(self) -> int:
        """Multiply-adds of one coordinate's reads: each of its tokens' channels blends 2**axes nodes."""
        return sum(p.tokens * self.channels * 2 ** len(p.axes) for p in self.pyramids)

    def to_dict(self) -> dict:
        return {"pyramids": [p.to_dict() for p in self.pyramids], "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict) -> PyramidLayout:
        return cls(tuple(Pyramid.from_dict(p) for p in d["pyramids"]), d["channels"])

    @classmethod
    def check(cls, c: Any, d: dict, path: str, in_features: int) -> None:
        """The schema entry (``c``: :class:`neofield.metadata.Checker`)."""
        c.known(d, ("pyramids", "channels"), path)
        c.integer(d, "channels", f"{path}.channels", 1, MAX_CHANNELS)
        pyramids = d.get("pyramids")
        if not (isinstance(pyramids, list) and 1 <= len(pyramids) <= 4):
            raise c.fail(f"{path}.pyramids", "must be a list of 1 to 4 pyramids", pyramids)
        for k, p in enumerate(pyramids):
            where = f"{path}.pyramids[{k}]"
            if not isinstance(p, dict):
                raise c.fail(where, "must be an object", p)
            c.known(p, ("axes", "low", "high", "coarse", "fine", "levels", "taps"), where)
            axes = p.get("axes")
            if not (isinstance(axes, list) and 1 <= len(axes) <= 3 and len(set(axes)) == len(axes) and all(
                    isinstance(a, int) and not isinstance(a, bool) and 0 <= a < in_features for a in axes)):
                raise c.fail(f"{where}.axes", f"must be 1 to 3 distinct inputs from 0 to {in_features - 1}", axes)
            n = len(axes)
            for key in ("low", "high"):
                v = p.get(key)
                if not (isinstance(v, list) and len(v) == n and all(
                        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) <= 1e9
                        for x in v)):
                    raise c.fail(f"{where}.{key}", f"must be {n} finite numbers", v)
            if not all(h > lo for lo, h in zip(p["low"], p["high"])):
                raise c.fail(f"{where}.high", "must lie above low on every axis", p["high"])
            for key in ("coarse", "fine"):
                v = p.get(key)
                if not (isinstance(v, list) and len(v) == n and all(
                        isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= c.limits.audio_samples
                        for x in v)):
                    raise c.fail(f"{where}.{key}", f"must be {n} whole numbers of nodes", v)
            c.integer(p, "levels", f"{where}.levels", 1, MAX_LEVELS)
            if "taps" in p:  # format 8 on
                taps = c.integer(p, "taps", f"{where}.taps", 0, p["levels"])
                if taps and n < 2:
                    raise c.fail(f"{where}.taps", "must be 0 for a pyramid over one axis", taps)
            # the node count is checked against the limits through the field's parameter count
