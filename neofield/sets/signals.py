"""A dataset of same-shaped signals as one sampler: (item, point) pairs drawn across the whole set.

Every item shares one grid, so the coordinates of its ``P`` points are built
once, with the codec's own conventions (:mod:`neofield.signal`): a picture's
pixel centres and frame times, a sound's sample times. That makes one item of
a set exactly what ``neofield encode`` would have fitted, and lets
``neofield decode --item`` render it through the codec's renderer.

A point's latent set is ``item * segments_per_item + segment`` (the segment is
the frame of a clip, or a slice of a sound's time): the sampler appends that
index to the coordinates as a last column, which :class:`~.field.SetField`
splits off. The general fit loop (:func:`neofield.fit.fit`) then fits a set as
it fits one signal: Algorithm 1 of the NeoMLP paper, (signal, point) pairs
sampled i.i.d. with replacement over the whole dataset. Algorithm 2 samples
*balanced*: every step the same points of every signal, walking through a
shuffled grid (see :meth:`SetSignal.sample`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..fields.layouts import default_segments
from ..media import Media
from ..signal import MIN_AUDIO_PEAK, VIDEO_VALUES, CoordinateMap, Signal, ValueMap, centre_times
from .data import SignalSet

MAX_ID = 1 << 24  # latent indices travel as float32 coordinates: exact up to 2^24


def template(data: SignalSet) -> Signal:
    """The codec's :class:`Signal` of one item: its coordinate map and layout serve every item."""
    first = data.values[0]
    if data.kind == "audio":
        return Signal(Media(audio=first, sample_rate=int(data.rate)))
    if data.kind == "image":
        rgb = np.broadcast_to(first, (*first.shape[:2], 3)) if first.shape[-1] == 1 else first
        return Signal(Media(video=rgb[None], fps=1.0, still=True))
    return Signal(Media(video=first, fps=float(data.rate)))


class SetSignal:
    """Samples and renders a :class:`SignalSet` for a set field (see the module docstring)."""

    def __init__(self, data: SignalSet, segments_per_item: int | None = None, value_map: ValueMap | None = None,
                 balanced: bool = False):
        """``value_map``: the scale of a set fitted before (Algorithm 2 keeps the backbone's); by default
        8-bit pictures map to [-1, 1] and a set of sounds is divided by its peak. ``balanced``: every
        batch holds the same number of points of every item (Algorithm 2: each signal's latents then get
        the same number of equally noisy steps, whatever the size of the set they are fitted with)."""
        self.balanced = balanced
        self._cycle = torch.empty(0, dtype=torch.long)  # balanced: the shuffled grid points still to visit
        if len(data) == 0:
            raise ValueError("a set needs at least one signal")
        self.data = data
        self.kind = data.kind
        self.items = len(data)
        one = template(data)
        # by default what `neofield encode` gives one signal: one set per frame, or per 1,024 audio samples
        self.segments_per_item = segments_per_item or default_segments(one)
        if self.items * self.segments_per_item > MAX_ID:
            raise ValueError(f"{self.items:,} items x {self.segments_per_item:,} sets is more than {MAX_ID:,}")
        self.coordinate_map: CoordinateMap = one.coordinate_map
        self.channels = data.values.shape[-1]
        if value_map is not None:
            self.value_map = value_map
        elif self.kind == "audio":
            peak = float(np.abs(data.values).max()) if data.values.size else 1.0
            self.value_map = ValueMap(scale=1.0 / max(peak, MIN_AUDIO_PEAK), offset=0.0)  # one scale for the set
        else:
            self.value_map = VIDEO_VALUES
        self._layout = self._make_layout(one)
        self.grid, self.segment = self._make_grid(one)  # (P, I) coordinates, (P,) segment of each point
        self.points_per_item = len(self.grid)
        # (N, P, C): uint8 pictures stay uint8 until sampled, so MNIST's 47 M values cost 47 MB
        self.values = torch.from_numpy(np.ascontiguousarray(data.values).reshape(self.items, self.points_per_item,
                                                                                 self.channels))

    # ---- what the fit loop reads --------------------------------------------
    @property
    def n_points(self) -> int:
        return self.items * self.points_per_item

    @property
    def out_features(self) -> int:
        return self.channels

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batch`` (item, point) pairs i.i.d. over the set: coordinates with the latent index as a last
        column ``(B, I + 1)``, field values ``(B, C)`` and a loss mask of ones.

        ``balanced``: the same ``batch // items`` points of every item, taken in turn from a shuffled grid
        (each point once per pass). Latents fitted from one start on the same points, in the same order,
        differ only by their signals, not by their sampling noise: on digits, 95.3 % accuracy against
        92.8 % with each signal's own random points (150 steps; docs/cpu-defaults.md)."""
        if self.balanced:
            k = max(1, batch // self.items)
            while len(self._cycle) < k:
                self._cycle = torch.cat([self._cycle, torch.randperm(self.points_per_item, generator=generator)])
            shared, self._cycle = self._cycle[:k], self._cycle[k:]
            item, point = torch.arange(self.items).repeat(k), shared.repeat_interleave(self.items)
        else:
            item = torch.randint(0, self.items, (batch,), generator=generator)
            point = torch.randint(0, self.points_per_item, (batch,), generator=generator)
        return self.points(item, point), self.targets(item, point), torch.ones(len(item), self.channels)

    def points(self, item: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        ids = item * self.segments_per_item + self.segment[point]
        return torch.cat([self.grid[point], ids.float()[:, None]], dim=1)

    def targets(self, item: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        return self.value_map.to_field(self.values[item, point].float())

    # ---- one item as the codec sees it ------------------------------------------
    def layout(self) -> dict:
        """One item's layout (geometry, coordinates, values, outputs): what a bundle stores."""
        return self._layout

    def item_values(self, item: int) -> np.ndarray:
        return self.data.values[item]

    def _make_layout(self, one: Signal) -> dict:
        layout = one.layout()
        stream = "audio" if self.kind == "audio" else "video"
        layout["values"] = {stream: self.value_map.to_dict()}
        layout["outputs"] = {stream: [0, self.channels]}
        if stream == "video" and self.channels == 1:
            layout["geometry"]["video"]["channels"] = 1  # a gray field, written as RGB
        return layout

    def _make_grid(self, one: Signal) -> tuple[torch.Tensor, torch.Tensor]:
        cmap = self.coordinate_map
        if self.kind == "audio":
            samples = one.n_audio_points
            t = centre_times(samples, one.sample_rate)  # float64 until mapped: sub-sample precision
            segment = torch.arange(samples) * self.segments_per_item // samples
            return cmap.coords(t).float(), segment
        f, h, w, _ = one.video.shape
        frame = torch.arange(f).repeat_interleave(h * w)
        row = torch.arange(h).repeat_interleave(w).repeat(f)
        col = torch.arange(w).repeat(h * f)
        t = centre_times(f, one.fps).float()[frame]
        coords = cmap.coords(t, (col.float() + 0.5) / w, (row.float() + 0.5) / h).float()
        return coords, frame * self.segments_per_item // f


def item_psnr(decoded: torch.Tensor, original: torch.Tensor, kind: str) -> torch.Tensor:
    """PSNR per item of decoded raw values ``(N, P, C)`` against the originals, as the codec measures it:
    pictures rounded to 8 bits (peak 255), sound on its [-1, 1] scale (peak-to-peak 2)."""
    if kind == "audio":
        mse = (decoded.clamp(-1, 1) - original.float()).square().mean(dim=(1, 2))
        return 10 * torch.log10(4.0 / mse.clamp_min(1e-20))
    mse = (decoded.round().clamp(0, 255) - original.float()).square().mean(dim=(1, 2))
    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-20))
