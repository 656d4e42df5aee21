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
import sys
import time
from pathlib import Path

import torch
from torch import nn

from neofield.codec import make_field
from neofield.compare import compare
from neofield.fields.grid import Box, LatentPyramid
from neofield.fields.gridmlp import GridConfig, GridField, head, head_macs
from neofield.fields.layouts import default_segments
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


class NeoTokens(nn.Module):
    """NeoMLP per point with its hidden tokens read from latent grids (module docstring)."""

    def __init__(self, signal: Signal, config: GridConfig, dim: int, ffn: int = 2):
        super().__init__()
        box = Box(config.low, config.high) if signal.video is not None else Box((config.low[0],), (config.high[0],))
        coarse = config.coarse if signal.video is not None else (config.audio_coarse,)
        fine = config.fine if signal.video is not None else (config.audio_fine,)
        self.pyramid = LatentPyramid(box, coarse, fine, config.levels if signal.video is not None
                                     else config.audio_levels, dim)
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


class NeoCells(nn.Module):
    """NeoMLP once per coarse cell, its outputs a pyramid level, beside fine latent grids and a small MLP."""

    def __init__(self, signal: Signal, config: GridConfig, cells: tuple[int, ...], dim: int = 16, hidden: int = 2,
                 features: int = 4):
        super().__init__()
        self.video = signal.video is not None
        if self.video:
            pyramid = LatentPyramid(Box(config.low, config.high), config.coarse, config.fine, config.levels,
                                    config.channels)
        else:
            pyramid = LatentPyramid(Box((config.low[0],), (config.high[0],)), (config.audio_coarse,),
                                    (config.audio_fine,), config.audio_levels, config.audio_channels)
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


resolution_cache: dict[int, tuple[int, ...]] = {}


def build(design: str, signal: Signal, seed: int) -> tuple[nn.Module, float, int, int]:
    """(field, lr, warm-up steps, batch) of a design for ``signal``."""
    torch.manual_seed(seed)
    video = signal.video is not None
    if design == "neomlp":
        return make_field(signal, "tiny", default_segments(signal), seed=seed), 5e-3, 30, 1024
    stride = 2.0 if video else 4.0
    config = grid_config(signal, stride, levels=6 if video else 8, channels=2)
    if design == "grid":
        return GridField(config), 1e-2, 20, 4096
    if design == "grid-wide":
        return GridField(grid_config(signal, 1.0 if video else 2.0, 6 if video else 8, 2)), 1e-2, 20, 4096
    if design == "neotokens":
        return NeoTokens(signal, config, dim=8), 1e-2, 20, 4096
    if design == "neocells":
        full = resolution(signal)
        cells = (max(2, full[0] // 16), max(2, full[1] // 16), max(2, full[2] // 4)) if video else (max(2, full[0] // 256),)
        field = NeoCells(signal, config, cells)
        resolution_cache[id(field)] = full
        return field, 1e-2, 20, 4096
    raise ValueError(design)


def macs(field: nn.Module) -> int | float:
    if hasattr(field, "macs_per_point"):
        m = field.macs_per_point()
        return max(m.values()) if isinstance(m, dict) else m
    return float("nan")  # NeoMLP: counted in docs/cpu-defaults.md (~177 k per pixel for tiny)


COLUMNS = ["signal", "design", "params", "budget_s", "steps", "train_points_per_s", "psnr_db", "macs_per_point",
           "decode_points_per_s"]


def run(signal_name: str, signal: Signal, design: str, budget: float, seed: int) -> dict:
    field, lr, warmup, batch = build(design, signal, seed)
    config = FitConfig(lr=lr, warmup_steps=warmup, batch_size=batch, time_budget=budget, seed=seed, device="cpu",
                       compile="off")
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
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args(argv)
    rows = []
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS), flush=True)
    for name in args.signals:
        file, selection = SIGNALS[name]
        signal = Signal(read_media(args.data / file, selection))
        for design in args.designs:
            row = run(name, signal, design, args.budget, args.seed)
            rows.append(row)
            print("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
