"""Designs for a field that is cheap per pixel, at equal CPU time: the prototype table of docs/field-designs.md.

    python benchmarks/prototypes.py [--signals bikes bach] [--designs ...] [--budget SECONDS] [--csv FILE]

Every design is fitted by neofield's own loop (``neofield.fit.fit``: i.i.d. batches, Adam, warm-up then
cosine, bfloat16 where the CPU has it) for the same wall-clock budget, then rendered on the signal's own
grid and scored with ``neofield.compare.compare`` (float weights, no bundle). Besides PSNR each row gives
what the time bought (steps, training points/s), the parameters, and the multiply-adds per decoded
point, counted by the designs themselves.

The designs (``DESIGNS``):

* ``neomlp`` - today's default field: NeoMLP per point, a latent set per frame (the reference).
* ``grid`` - multiresolution latent grids and a 2 x 32 MLP (``--arch grid``): the Cool-chic / C3 family
  without attention.
* ``neotokens`` - NeoMLP made cheap on the per-point path: each pyramid level's features, read at the
  point, are one of its hidden tokens (D = the level's channels), beside its input tokens and output
  tokens; one narrow layer of attention and FFN mixes them.
* ``neocells`` - NeoMLP off the per-point path: it runs once per cell of a coarse grid, on the cell's
  coordinates and its own latent set (the cell's local nu-rep), and its output tokens read out to the
  cell's features; those are read at each point like a pyramid level, beside the fine levels, by the
  same small MLP as ``grid``.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import time
from pathlib import Path

import torch
from torch import nn

from neofield.codec import make_field
from neofield.compare import compare
from neofield.fields.cost import macs_per_point
from neofield.fields.grid import Box, LatentPyramid
from neofield.fields.gridmlp import GridConfig, GridField, grid_config_for, head, head_macs
from neofield.fields.layouts import default_segments
from neofield.fields.neogrid import NeoGridConfig, NeoGridField
from neofield.fields.neomlp import Block
from neofield.fit import FitConfig, fit
from neofield.media import Selection, read_media
from neofield.render import render_media
from neofield.signal import Signal

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
SIGNALS = {
    "bikes": ("bikes.mp4", Selection(duration=2.0, resize=(320, 136))),
    "bach": ("gt_bach.wav", Selection(duration=2.0)),
}


def box_of(signal: Signal) -> Box:
    """The field coordinates of the signal's grid, edge to edge: x, y in [-1, 1], time over its duration."""
    lo, hi = signal.coordinate_map.time_span(signal.duration)
    if signal.coordinate_map.x is None:
        return Box((lo,), (hi,))
    return Box((-1.0, -1.0, lo), (1.0, 1.0, hi))


def resolution(signal: Signal) -> tuple[int, ...]:
    """Nodes per axis at the signal's own resolution: pixels and frames, or samples."""
    if signal.video is None:
        return (signal.n_audio_points,)
    f, h, w, _ = signal.video.shape
    return (w, h, f)


def grid_config(signal: Signal, stride: float, levels: int, channels: int, width: int = 32) -> GridConfig:
    """A grid field whose finest level has a node every ``stride`` pixels (or samples) and frames."""
    box, full = box_of(signal), resolution(signal)
    fine = tuple(max(2, round(n / stride)) for n in full)
    if signal.video is None:
        return GridConfig(1, signal.out_features, box.low, box.high, audio_outputs=signal.out_features,
                          audio_coarse=max(2, fine[0] // 2 ** (levels + 2)), audio_fine=fine[0], audio_levels=levels,
                          audio_channels=channels, width=width)
    f = full[2]
    coarse = (max(2, fine[0] // 32), max(2, fine[1] // 32), max(2, min(f, round(f / stride)) // 8))
    fine = (fine[0], fine[1], max(2, min(f, round(f / max(1.0, stride / 2)))))
    return GridConfig(3, signal.out_features, box.low, box.high, coarse, fine, levels, channels, width=width)


def signal_pyramid(signal: Signal, config: GridConfig, channels: int | None = None) -> LatentPyramid:
    """The grid field's pyramid for the signal: over (x, y, t) for video, over t for sound (``channels``:
    another depth than the config's)."""
    if signal.video is not None:
        return LatentPyramid(Box(config.low, config.high), config.coarse, config.fine, config.levels,
                             channels or config.channels)
    return LatentPyramid(Box((config.low[0],), (config.high[0],)), (config.audio_coarse,), (config.audio_fine,),
                         config.audio_levels, channels or config.audio_channels)


class NeoTokens(nn.Module):
    """NeoMLP per point with its hidden tokens read from latent grids (module docstring)."""

    def __init__(self, signal: Signal, config: GridConfig, dim: int, ffn: int = 2):
        super().__init__()
        self.pyramid = signal_pyramid(signal, config, channels=dim)
        inputs, outputs = signal.coordinate_map.in_features, signal.out_features
        self.input_embed = nn.Parameter(torch.randn(inputs, dim))
        self.input_scale = nn.Parameter(torch.randn(inputs, dim))
        self.output_embed = nn.Parameter(torch.randn(outputs, dim) * 0.03)
        self.block = Block(dim, ffn * dim, max(1, dim // 8), "linear")
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.readout = nn.Linear(dim, 1)
        self.levels, self.dim, self.inputs, self.outputs, self.ffn = len(self.pyramid.grids), dim, inputs, outputs, ffn

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        b = len(coords)
        hidden = self.pyramid(coords).view(b, self.levels, self.dim)  # one token a level
        inputs = coords.float()[..., None] * self.input_scale + self.input_embed
        tokens = torch.cat([inputs, hidden.to(inputs.dtype), self.output_embed.expand(b, -1, -1)], 1)
        tokens = self.block(tokens, keep=self.outputs)
        return self.readout(self.norm(tokens)).squeeze(-1)

    def macs_per_point(self) -> int:
        t, d, o = self.inputs + self.levels + self.outputs, self.dim, self.outputs
        attention = t * 3 * d * d + 2 * t * d * d // max(1, d // 8) + o * d * d  # q, k, v; linear attention's kv
        ffn = o * 2 * d * self.ffn * d  # the last layer keeps the output tokens only
        return self.pyramid.macs_per_point() + self.inputs * d + attention + ffn + o * d


class NeoLean(nn.Module):
    """NeoMLP per point at its leanest: the pyramid's features (2 channels a level) become ``hidden`` hidden
    tokens through one linear map, and one layer of attention + FFN, queried by the output tokens alone,
    reads them out. No input tokens: the pyramid already says where the point is."""

    def __init__(self, signal: Signal, config: GridConfig, dim: int = 8, hidden: int = 2):
        super().__init__()
        self.video = signal.video is not None
        self.pyramid = signal_pyramid(signal, config)
        self.outputs, self.dim, self.hidden = signal.out_features, dim, hidden
        self.to_tokens = nn.Linear(self.pyramid.features, hidden * dim)
        self.output_embed = nn.Parameter(torch.randn(self.outputs, dim) * 0.03)
        self.block = Block(dim, 2 * dim, 1, "linear")
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.readout = nn.Linear(dim, 1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        b = len(coords)
        hidden = self.to_tokens(self.pyramid(coords if self.video else coords[:, -1:])).view(b, self.hidden, self.dim)
        tokens = torch.cat([hidden, self.output_embed.expand(b, -1, -1).to(hidden.dtype)], 1)
        return self.readout(self.norm(self.block(tokens, keep=self.outputs))).squeeze(-1)

    def macs_per_point(self) -> int:
        d, t, o = self.dim, self.hidden + self.outputs, self.outputs
        return (self.pyramid.macs_per_point() + self.pyramid.features * self.hidden * d + t * 3 * d * d
                + 2 * t * d * d + o * d * d + o * 4 * d * d + o * d)


class NeoCells(nn.Module):
    """NeoMLP once per coarse cell, its outputs a pyramid level, beside fine latent grids and a small MLP."""

    def __init__(self, signal: Signal, config: GridConfig, cells: tuple[int, ...], dim: int = 16, hidden: int = 2,
                 features: int = 4):
        super().__init__()
        self.video = signal.video is not None
        pyramid = signal_pyramid(signal, config)
        self.pyramid, self.config = pyramid, config
        box = pyramid.box
        self.cells, self.features, self.dim, self.hidden = cells, features, dim, hidden
        # the cell centres' coordinates, in field units, axes (x, y, t) or (t,), in grid_sample's order
        axes = [torch.tensor([lo + (hi - lo) * (i + 0.5) / n for i in range(n)])
                for lo, hi, n in zip(box.low, box.high, cells)]
        mesh = torch.meshgrid(*reversed(axes), indexing="ij")
        self.register_buffer("centres", torch.stack(list(reversed(mesh)), -1).reshape(-1, len(cells)), persistent=False)
        n = len(self.centres)
        self.latents = nn.Parameter(torch.randn(n, hidden, dim) * 0.03)
        inputs = len(cells)
        self.input_embed = nn.Parameter(torch.randn(inputs, dim))
        self.input_scale = nn.Parameter(torch.randn(inputs, dim))
        self.output_embed = nn.Parameter(torch.randn(features, dim) * 0.03)
        self.blocks = nn.ModuleList(Block(dim, 4 * dim, 2, "linear") for _ in range(2))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.readout = nn.Linear(dim, 1)
        self.box = box
        self.head = head(pyramid.features + features, config.width, config.layers,
                         signal.out_features if self.video else config.audio_outputs)
        self._cache = None

    def cell_features(self) -> torch.Tensor:
        """NeoMLP at every cell: ``(features, *reversed(cells))``."""
        n = len(self.centres)
        c = self.centres / torch.tensor([max(abs(lo), abs(hi)) for lo, hi in zip(self.box.low, self.box.high)])
        inputs = c[..., None] * self.input_scale + self.input_embed
        tokens = torch.cat([inputs, self.latents.to(inputs.dtype), self.output_embed.expand(n, -1, -1)], 1)
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, keep=self.features if i == len(self.blocks) - 1 else None)
        values = self.readout(self.norm(tokens)).squeeze(-1)  # (cells, features)
        return values.t().reshape(self.features, *reversed(self.cells))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if self.training or self._cache is None:
            grid = self.cell_features()
            self._cache = None if self.training else grid
        else:
            grid = self._cache
        u = self.box.normalise(coords if self.video else coords[:, -1:])
        axes = u.shape[1]
        if axes == 1:
            where = torch.stack([u[:, 0], torch.zeros_like(u[:, 0])], -1).view(1, 1, -1, 2)
            g = grid[None, :, None, :]
        else:
            where, g = u.view(1, 1, 1, -1, axes), grid[None]
        cells = torch.nn.functional.grid_sample(g.to(u.dtype), where, mode="bilinear", padding_mode="border",
                                                align_corners=False).reshape(self.features, -1).t()
        fine = self.pyramid(coords if self.video else coords[:, -1:])
        return self.head(torch.cat([fine, cells.to(fine.dtype)], 1))

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def macs_per_point(self) -> int:
        pyramid, c = self.pyramid, self.config
        per_cell = (len(self.cells) + self.hidden + self.features) * (4 * self.dim ** 2 + 8 * self.dim ** 2)
        points = math.prod(resolution_cache[id(self)])
        return (pyramid.macs_per_point() + self.features * 2 ** len(self.cells)
                + head_macs(pyramid.features + self.features, c.width, c.layers, self.head[-1].out_features)
                + per_cell * len(self.centres) // points)


class NeoPatches(nn.Module):
    """NeoMLP decodes each tile's latent set into that tile's patch of features (module docstring).

    Tiles cover the box; each holds a latent set (``hidden`` tokens of width ``dim``). NeoMLP runs at every
    node of a ``sub``-per-axis lattice inside each tile, its input tokens the node's position in the tile
    (so the backbone is one decoder shared by every tile: a tile's latent set is its local nu-rep), its
    output tokens read out to ``features`` scalars. The nodes make one feature grid over the box, read at
    each point like a pyramid level, beside the pyramid's plain levels, by a small MLP.
    """

    def __init__(self, signal: Signal, config: GridConfig, tiles: tuple[int, ...], sub: tuple[int, ...],
                 dim: int = 16, hidden: int = 2, features: int = 4, layers: int = 1):
        super().__init__()
        self.video = signal.video is not None
        pyramid = signal_pyramid(signal, config)
        self.pyramid, self.config, self.box = pyramid, config, pyramid.box
        self.tiles, self.sub, self.features, self.dim, self.hidden = tiles, sub, features, dim, hidden
        self.nodes = tuple(t * s for t, s in zip(tiles, sub))
        axes = len(tiles)
        # every node's tile and its position inside the tile, in [-1, 1] per axis
        grids = torch.meshgrid(*[torch.arange(n) for n in reversed(self.nodes)], indexing="ij")
        index = torch.stack(list(reversed(grids)), -1).reshape(-1, axes)  # (nodes, axes), x first
        sub_t = torch.tensor(sub)
        tile = index // sub_t
        local = ((index % sub_t).float() + 0.5) / sub_t * 2 - 1
        strides = [1]
        for t in tiles[:-1]:
            strides.append(strides[-1] * t)
        self.register_buffer("tile_of", (tile * torch.tensor(strides)).sum(1), persistent=False)
        self.register_buffer("local", local, persistent=False)
        self.latents = nn.Parameter(torch.randn(math.prod(tiles), hidden, dim) * 0.03)
        self.input_embed = nn.Parameter(torch.randn(axes, dim))
        self.input_scale = nn.Parameter(torch.randn(axes, dim))
        self.output_embed = nn.Parameter(torch.randn(features, dim) * 0.03)
        self.blocks = nn.ModuleList(Block(dim, 4 * dim, 2, "linear") for _ in range(layers))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.readout = nn.Linear(dim, 1)
        self.head = head(pyramid.features + features, config.width, config.layers,
                         signal.out_features if self.video else config.audio_outputs)
        self._cache = None

    def node_features(self) -> torch.Tensor:
        n = len(self.local)
        inputs = self.local[..., None] * self.input_scale + self.input_embed
        tokens = torch.cat([inputs, self.latents[self.tile_of].to(inputs.dtype),
                            self.output_embed.expand(n, -1, -1)], 1)
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, keep=self.features if i == len(self.blocks) - 1 else None)
        values = self.readout(self.norm(tokens)).squeeze(-1)
        return values.t().reshape(self.features, *reversed(self.nodes))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if self.training or self._cache is None:
            grid = self.node_features()
            self._cache = None if self.training else grid
        else:
            grid = self._cache
        c = coords if self.video else coords[:, -1:]
        u = self.box.normalise(c)
        if u.shape[1] == 1:
            where = torch.stack([u[:, 0], torch.zeros_like(u[:, 0])], -1).view(1, 1, -1, 2)
            g = grid[None, :, None, :]
        else:
            where, g = u.view(1, 1, 1, -1, 3), grid[None]
        patch = torch.nn.functional.grid_sample(g.to(u.dtype), where, mode="bilinear", padding_mode="border",
                                                align_corners=False).reshape(self.features, -1).t()
        return self.head(torch.cat([self.pyramid(c), patch.to(u.dtype)], 1))

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def macs_per_point(self) -> int:
        c = self.config
        tokens = len(self.tiles) + self.hidden + self.features
        per_node = tokens * (4 + 8) * self.dim ** 2
        points = math.prod(resolution_cache[id(self)])
        return (self.pyramid.macs_per_point() + self.features * 2 ** len(self.tiles)
                + head_macs(self.pyramid.features + self.features, c.width, c.layers, self.head[-1].out_features)
                + per_node * len(self.local) // points)


resolution_cache: dict[int, tuple[int, ...]] = {}
# NeoGrid's small matrices run faster in float32 than under bfloat16 autocast on our CPUs (the casts and
# bfloat16 layer norms cost more than the products save): 261 k against 246 k points/s on bikes, 687 k against
# 416 k on Bach; the grid + MLP is the other way round (612 k against 574 k).
PRECISION = {"neogrid": "float32"}  # and its variants (neogrid-d16-h4, ...)


def sized(signal: Signal, parameters: int, channels: int = 2) -> GridConfig:
    """A pyramid configuration of about ``parameters`` parameters for ``signal`` (``--arch grid``'s rule)."""
    from neofield.codec.build import box_of

    low, high = box_of(signal)
    picture = resolution(signal) if signal.video is not None else None
    audio = signal.audio_channels if signal.audio is not None else 0
    return grid_config_for(low, high, picture, signal.n_audio_points if audio else None, signal.out_features, audio,
                           parameters, channels=channels)


def build(design: str, signal: Signal, seed: int, parameters: int) -> tuple[nn.Module, float, int, int]:
    """(field, lr, warm-up steps, batch) of a design for ``signal``, with about ``parameters`` parameters."""
    torch.manual_seed(seed)
    video = signal.video is not None
    if design == "neomlp":
        return make_field(signal, "tiny", default_segments(signal), seed=seed), 5e-3, 30, 1024
    if design.startswith("grid"):  # grid, grid-b16k: the batch
        batch = 16384 if design.endswith("16k") else 4096
        return GridField(sized(signal, parameters)), 1e-2, 20, batch
    if design == "neotokens":
        return NeoTokens(signal, sized(signal, parameters, channels=8), dim=8), 1e-2, 20, 4096
    if design.startswith("neogrid"):  # the production field (neofield.fields.neogrid), sized as --arch grid is;
        # neogrid-d16-h4: token width 16, 4 hidden tokens (FFN 2x the width)
        from neofield.fields.pyramid import Pyramid, PyramidLayout

        c = sized(signal, parameters)
        pyramids = []
        if c.out_features > c.audio_outputs:
            pyramids.append(Pyramid((0, 1, 2), c.low, c.high, c.coarse, c.fine, c.levels))
        if c.audio_outputs:
            t = c.in_features - 1
            pyramids.append(Pyramid((t,), (c.low[t],), (c.high[t],), (c.audio_coarse,), (c.audio_fine,),
                                    c.audio_levels))
        layout = PyramidLayout(tuple(pyramids), c.channels)
        shape = dict(re.findall(r"-([dhf])(\d+)", design))  # neogrid-d16-h4-f0: D 16, 4 hidden, FFN 0 x D
        dim, hidden, ffn = int(shape.get("d", 8)), int(shape.get("h", 2)), int(shape.get("f", 2))
        config = NeoGridConfig(c.in_features, c.out_features, layout.tokens, layout.channels, dim=dim,
                               hidden_tokens=hidden, ffn_dim=ffn * dim)
        return NeoGridField(config, layout), 1e-2, 20, 4096
    if design.startswith("neolean"):  # neolean, neolean-b16k: the batch
        return NeoLean(signal, sized(signal, parameters)), 1e-2, 20, 16384 if design.endswith("16k") else 4096
    if design == "neocells":
        full = resolution(signal)
        cells = (max(2, full[0] // 32), max(2, full[1] // 32), max(2, full[2] // 8)) if video else (max(2, full[0] // 2048),)
        neomlp = 16 * 2 * math.prod(cells) + 12_000  # the cells' latent sets and a D-16 backbone, about
        field = NeoCells(signal, sized(signal, max(parameters - neomlp, 1000)), cells)
        resolution_cache[id(field)] = full
        return field, 1e-2, 20, 4096
    if design == "neopatches":
        full = resolution(signal)
        if video:
            tiles = (max(1, full[0] // 32), max(1, full[1] // 32), max(1, full[2] // 8))
            sub = (4, 4, 2)
        else:
            tiles, sub = (max(1, full[0] // 1024),), (16,)
        neomlp = 16 * 2 * math.prod(tiles) + 6_000
        field = NeoPatches(signal, sized(signal, max(parameters - neomlp, 1000)), tiles, sub)
        resolution_cache[id(field)] = full
        return field, 1e-2, 20, 4096
    raise ValueError(design)


def macs(field: nn.Module) -> int | float:
    """Multiply-adds per decoded point: the prototypes count their own (their per-cell NeoMLP is shared by
    the cell's points); neofield's fields are counted by neofield.fields.cost, as `neofield info` does."""
    if hasattr(field, "macs_per_point") and not isinstance(field, (GridField, NeoGridField)):
        return field.macs_per_point()
    return macs_per_point(field)


COLUMNS = ["signal", "design", "params", "budget_s", "steps", "train_points_per_s", "psnr_db", "macs_per_point",
           "decode_points_per_s"]


def run(signal_name: str, signal: Signal, design: str, budget: float, seed: int, parameters: int,
        compile_mode: str = "off") -> dict:
    field, lr, warmup, batch = build(design, signal, seed, parameters)
    steps = int(-budget) if budget < 0 else None  # a negative budget: that many steps (equal work, not time)
    config = FitConfig(lr=lr, warmup_steps=warmup, batch_size=batch, time_budget=budget if steps is None else None,
                       steps=steps, seed=seed, device="cpu", compile=compile_mode,
                       precision=PRECISION.get(design.split("-")[0], "auto"))
    result = fit(field, signal, config)
    t = time.perf_counter()
    quality = compare(signal.media, render_media(field, signal.layout()))
    decode_s = time.perf_counter() - t
    psnr = quality.get("video_psnr_db", quality.get("audio_psnr_db"))
    return {"signal": signal_name, "design": design, "params": sum(p.numel() for p in field.parameters()),
            "budget_s": budget, "steps": result.steps, "train_points_per_s": round(result.points_per_second),
            "psnr_db": round(psnr, 2), "macs_per_point": macs(field),
            "decode_points_per_s": round(signal.n_points / decode_s)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--signals", nargs="+", default=list(SIGNALS), choices=list(SIGNALS))
    ap.add_argument("--designs", nargs="+", default=["neomlp", "grid", "neotokens", "neocells"])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of fitting per design (negative: steps)")
    ap.add_argument("--params", type=int, nargs="+", default=[40_000, 400_000],
                    help="parameter budgets each design is sized to (today's default field has ~37 k on 2 s of bikes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", default="off", choices=["off", "on"], help="torch.compile every design's training step")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args(argv)
    rows = []
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS), flush=True)
    for name in args.signals:
        file, selection = SIGNALS[name]
        signal = Signal(read_media(args.data / file, selection))
        for parameters in args.params:
            for design in args.designs:
                if design == "neomlp" and parameters != args.params[0]:
                    continue  # today's field has its own size
                row = run(name, signal, design, args.budget, args.seed, parameters, args.compile)
                rows.append(row)
                print("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
