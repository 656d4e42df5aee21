"""How latents are laid over a signal: which latent sets serve a coordinate, and with what weights.

A NeoMLP field keeps its latents (hidden + output token embeddings) in a table of *sets*
(:class:`Latents`, ``(sets, tokens, dim)``). A :class:`LatentLayout` says how that table is laid over
the signal's coordinates:

* :meth:`~LatentLayout.rows` - which rows serve each coordinate, and with what weights;
* :meth:`~LatentLayout.gather` - the latent set of each coordinate (those rows, blended);
* :attr:`~LatentLayout.sets` and :meth:`~LatentLayout.num_parameters` - the table it needs;
* :meth:`~LatentLayout.to_dict` / :meth:`~LatentLayout.check` - its bundle metadata and schema entry;
* :meth:`~LatentLayout.rows_for` - the rows a box of coordinates needs, for random access.

The backbone, the fit loop, the renderer and the bundle see only this protocol, so a new layout (a grid
over space and time, say) is a class here and an entry in :data:`LAYOUTS`. Today's layout is
:class:`TimeSegments`: equal slices of time, one set each, held (``nearest``) or blended between their
centres (``linear``). Its metadata is the bundle's ``model.segmentation`` (without a ``type``, so that
bundles written before layouts had names read, and are written, byte for byte as they were).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from .presets import INTERPOLATIONS
from .pyramid import PyramidLayout

if TYPE_CHECKING:
    from ..signal import Signal

AUDIO_SAMPLES_PER_SEGMENT = 1024  # one latent set per ~23 ms of 44.1 kHz audio


class Latents(nn.Module):
    """A table of latent sets: ``(sets, hidden + output tokens, dim)``.

    Initialised N(0, 1e-3) as in the paper, so that at the start the output
    tokens differ only slightly and the backbone does the early work.
    """

    def __init__(self, sets: int, tokens: int, dim: int, init_std: float = 1e-3 ** 0.5):
        super().__init__()
        self.table = nn.Parameter(torch.randn(sets, tokens, dim) * init_std)

    def __len__(self) -> int:
        return self.table.shape[0]

    def forward(self, ids: torch.Tensor | None) -> torch.Tensor:
        return self.table[ids]


class LatentLayout(Protocol):
    """How a latent table is laid over a signal's field coordinates (see the module docstring)."""

    type: ClassVar[str]  # the name a bundle stores

    @property
    def sets(self) -> int:
        """Rows of the latent table."""

    def rows(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids (B, K), weights (B, K))``: the rows serving each coordinate and their weights (summing to 1)."""

    def gather(self, table: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Each coordinate's latent set ``(B, tokens, dim)`` from ``table`` ``(sets, tokens, dim)``."""

    def rows_for(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The rows any coordinate in the box ``low <= coords <= high`` (field units, ``(I,)`` each) reads."""

    def num_parameters(self, tokens: int, dim: int) -> int:
        """Parameters of the table this layout needs for sets of ``tokens`` tokens of width ``dim``."""

    def to_dict(self) -> dict:
        """The layout's bundle metadata."""


def blend(table: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[:, k] * table[ids[:, k]]``: the generic :meth:`LatentLayout.gather` of any layout."""
    return torch.einsum("bk,bktd->btd", weights.to(table.dtype), table[ids])


@dataclass(frozen=True)
class TimeSegments:
    """``segments`` equal slices of field time ``[t_start, t_end)``, read from input ``time_index``.

    ``nearest``: a point takes the set of its slice, so the field is piecewise
    constant in its latents and a time between two video frames repeats one.
    ``linear``: set ``k`` sits at the centre of slice ``k`` and a point blends
    the two sets around it, so the latents vary continuously in time. With one
    set per frame the centres are the frame times, and the training points
    see exactly their own frame's set, as with ``nearest``.
    """

    type: ClassVar[str] = "segments"
    KEYS: ClassVar[tuple[str, ...]] = ("segments", "t_start", "t_end", "time_index", "interpolation")

    segments: int = 1
    t_start: float = -1.0
    t_end: float = 1.0
    time_index: int = -1
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")

    @property
    def sets(self) -> int:
        return self.segments

    def position(self, coords: torch.Tensor) -> torch.Tensor:
        """Field time in units of slices from ``t_start``."""
        t = coords[:, self.time_index].float()
        return (t - self.t_start) / (self.t_end - self.t_start) * self.segments

    def ids(self, coords: torch.Tensor) -> torch.Tensor:
        """The slice each coordinate falls in (clamped to the table)."""
        return self.position(coords).floor().long().clamp_(0, self.segments - 1)

    def neighbours(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i0, i1, w)``: the sets whose centres bracket each coordinate and the
        weight of ``i1``; before the first centre and after the last, the end set."""
        pos = self.position(coords) - 0.5  # in units of slices from the first centre
        i0 = pos.floor().clamp_(0, max(self.segments - 2, 0))
        w = (pos - i0).clamp_(0.0, 1.0)
        i0 = i0.long()
        return i0, (i0 + 1).clamp_(max=self.segments - 1), w

    @classmethod
    def over(cls, signal: Signal, segments: int | None = None, interpolation: str = "linear") -> TimeSegments:
        """``segments`` slices (default :func:`default_segments`) of the signal's whole time span."""
        lo, hi = signal.coordinate_map.time_span(signal.duration)
        return cls(segments or default_segments(signal), lo, hi, interpolation=interpolation)

    def rows(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.interpolation == "nearest" or self.segments == 1:
            return self.ids(coords)[:, None], torch.ones(len(coords), 1)
        i0, i1, w = self.neighbours(coords)
        return torch.stack([i0, i1], 1), torch.stack([1 - w, w], 1)

    def gather(self, table: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        # the same arithmetic as :func:`blend` of :meth:`rows`, written out so that one set costs a view,
        # nearest a gather and linear one lerp
        if self.segments == 1:
            return table.expand(coords.shape[0], -1, -1)
        if self.interpolation == "nearest":
            return table[self.ids(coords)]
        i0, i1, w = self.neighbours(coords)
        return torch.lerp(table[i0], table[i1], w[:, None, None])

    def rows_for(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        box = torch.stack([torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)])
        if self.interpolation == "nearest" or self.segments == 1:
            first, last = self.ids(box).tolist()
        else:
            i0, i1, _ = self.neighbours(box)
            first, last = int(i0[0]), int(i1[1])
        return torch.arange(first, last + 1)

    def num_parameters(self, tokens: int, dim: int) -> int:
        return self.segments * tokens * dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TimeSegments:
        return cls(**d)

    @classmethod
    def check(cls, c: Any, d: dict, path: str, in_features: int) -> None:
        """The schema entry: ``c`` is the schema's checker (:class:`neofield.metadata.Checker`); raises on
        anything a decoder should not build."""
        c.integer(d, "segments", f"{path}.segments", 1, c.limits.segments)
        t0 = c.number(d, "t_start", f"{path}.t_start", -1e9, 1e9)
        t1 = c.number(d, "t_end", f"{path}.t_end", -1e9, 1e9)
        if not t1 > t0:
            raise c.fail(f"{path}.t_end", f"must be after t_start {t0:g}", t1)
        c.integer(d, "time_index", f"{path}.time_index", -in_features, in_features - 1)
        c.choice(d, "interpolation", f"{path}.interpolation", INTERPOLATIONS, required=False)
        c.known(d, cls.KEYS, path)


LAYOUTS: dict[str, type] = {TimeSegments.type: TimeSegments, PyramidLayout.type: PyramidLayout}
"""Every layout a bundle may name, by its ``type``; a bundle without one holds :class:`TimeSegments`."""


def layout_type(d: dict) -> str:
    return d.get("type", TimeSegments.type)


def metadata(layout: LatentLayout) -> dict:
    """What a bundle stores of ``layout``: its own dict, named by its ``type`` unless it is the default
    :class:`TimeSegments` (whose bundles predate the name)."""
    d = layout.to_dict()
    return d if layout.type == TimeSegments.type else {"type": layout.type, **d}


def from_dict(d: dict | None) -> LatentLayout:
    """The layout a bundle's metadata describes (checked by the schema first; None: one set for all)."""
    d = dict(d or {})
    cls = LAYOUTS[d.pop("type", TimeSegments.type)]
    return cls.from_dict(d)


def default_segments(signal: Signal) -> int:
    """One latent set per video frame, or per ~1,024 audio samples for pure sound."""
    if signal.video is not None:
        return len(signal.video)
    return max(1, math.ceil(signal.n_audio_points / AUDIO_SAMPLES_PER_SEGMENT))
