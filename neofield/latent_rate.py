"""The rate of a field's latents, differentiable: what a fit with ``--lambda`` adds to its loss.

Issue 24. A fit with a rate term minimises ``MSE + lambda * bits / points``: ``bits`` is what the latents
would cost coded at a fixed quantization step (:data:`LATENT_STEP`), each block of them (a pyramid's level
and channel: :meth:`~neofield.fields.pyramid.PyramidLayout.blocks`) under discrete Laplaces, as the bundle
codes a level: a grid of two axes or more plane by plane (:mod:`neofield.wavefront`), each latent centred on
the median of its rounded earlier neighbours under the scale of its class; a line as a checkerboard
(:mod:`neofield.checkerboard`), centred on 0, one scale for its anchors and one for each class of its other
latents. So a latent in a still or smooth region is priced as one among its likes, and one in a busy region
as one among spread values.
Each block's scale is the one that codes its rounded latents in the fewest bits (:func:`fit_scales`, a
search refreshed every :data:`STEER_EVERY` steps), as the bundle's coder fits its own: a fine level whose
nodes are 92 % zeros is ~0.5 bits a node, where the continuous maximum-likelihood scale (the mean distance
from 0) prices it at 0.84 and the whole table 17 % over its coded bytes (2 s of bikes; 2.5 % under with the
search). So the fit learns latents that are cheap to code as well as right: most of a fine level's nodes
fall to 0, the detail stays where it pays.

While fitting, the latents are taken a uniform step's noise away from their float values (what rounding
would do to them, on average, with a gradient); in the finetuning phase at the end, rounded to the step
(straight-through), as the bundle stores them. The bundle codes their symbols under Laplace models fitted
to them (:class:`neofield.entropy.LaplaceModel`), so the bits here are an estimate of those bytes, not
the bytes themselves. This module knows nothing of the bundle; the encoder hands the bundle the step.

A size target (``--size``, ``--bitrate``) gives the term a number of bits to reach instead of a fixed
``lambda``: the fit then steers ``lambda`` as it goes (:func:`steer`), up while the latents cost more than
their share of the target, down while they cost less. It steers on the bits of the latents rounded to the
step (:func:`rounded_bits`), what the bundle will hold: under noise the same latents cost ~1.5x as much
(2 s of bikes), and a fit steered on those ended a third under its target once finetuning rounded them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import wavefront
from .checkerboard import CLASSES, anchors, context_classes

LATENT_STEP = 0.2  # the latents' quantization step under a rate term (docs/rate-term.md)
MIN_SCALE = 0.05  # a block's Laplace scale, in steps, never below this (a block all 0 still has a model)
CONTINUOUS_FLOOR = 0.5  # ... never below this times the float latents' mean distance from 0 (see fit_scales)
SCALE_GRID = tuple(2.0 ** (k / 2) for k in range(-12, 5))  # the scales tried: multiples of the mean |symbol|
STEER_EVERY = 10  # steps between two refreshes of the scales and moves of a steered lambda (each ~a step)
STEER_GAIN = 0.2  # ... its log moves by this times the log of (bits / target)
STEER_CLAMP = 2.0  # ... the ratio clamped to [1/2, 2]: at most ~15 % a move
STEER_RANGE = (1e-6, 1e3)  # and lambda kept within these


@dataclass(frozen=True)
class RateTerm:
    """``lam``: the weight of the latents' bits per point of the signal in the loss (where a steered fit
    starts it); ``step``: their quantization step; ``target_bits``: the latents' bits the fit steers
    ``lam`` to, or None to hold it."""

    lam: float
    step: float = LATENT_STEP
    target_bits: float | None = None
    target_psnr: float | None = None  # or the PSNR (dB) the fit steers ``lam`` to: the fewest bits that keep it

    def to_dict(self) -> dict:
        out = {"lambda": self.lam, "step": self.step}
        if self.target_bits is not None:
            out["target_bits"] = round(self.target_bits)
        if self.target_psnr is not None:
            out["target_psnr"] = self.target_psnr
        return out


def steer(lam: float, bits: float, target_bits: float, gain: float = STEER_GAIN) -> float:
    """The next step's lambda, moved toward the one whose latents cost ``target_bits``: multiplied by
    ``(bits / target_bits) ** gain`` (the ratio clamped to [1/2, 2]), a gradient step on the log of lambda
    for the dual of "least distortion with at most that many bits". Pure, so a resumed fit steers alike."""
    ratio = min(max(bits / max(target_bits, 1.0), 1 / STEER_CLAMP), STEER_CLAMP)
    low, high = STEER_RANGE
    return min(max(lam * ratio ** gain, low), high)


def steer_to_psnr(lam: float, psnr: float, target_psnr: float) -> float:
    """:func:`steer` for a PSNR target: lambda rises while the field scores above ``target_psnr`` (it can
    afford fewer bits) and falls while below, by the ratio of the MSEs the two PSNRs stand for."""
    return steer(lam, 10.0 ** ((psnr - target_psnr) / 10.0), 1.0)


def grids(field: nn.Module) -> tuple[tuple[int, ...], ...] | None:
    """Each of :func:`rated`'s blocks' grid (its level's nodes per axis), where a latent's neighbours lie: the
    bundle codes a level from them (:mod:`neofield.wavefront`, :mod:`neofield.checkerboard`), and the rate term
    prices it so."""
    shapes = getattr(getattr(field, "layout", None), "block_shapes", None)
    return shapes() if shapes is not None else None


def rated(field: nn.Module) -> tuple[nn.Parameter, tuple[tuple[int, int, int], ...]]:
    """The latent table a rate term prices and its blocks; a ValueError for a field without a pyramid."""
    blocks = getattr(getattr(field, "layout", None), "blocks", None)
    if blocks is None:
        raise ValueError("a rate term prices the latent pyramids of a neogrid field")
    return field.latents.table, blocks()


LN2 = math.log(2.0)


def laplace_bits(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``-log2`` of the probability of the unit bin around each ``y`` under a zero-mean Laplace of ``scale``
    (both in steps): the integral over ``[|y| - 1/2, |y| + 1/2]``. A bin clear of 0 holds
    ``e^(-(|y| - 1/2) / scale) (1 - e^(-1 / scale)) / 2``, so its bits grow linearly in ``|y|``, and are
    written so: no exponential to underflow, however far out ``y`` lies."""
    return _bits_and_slope(y, *scale_constants(scale), slope=False)[0]


def _bits_and_slope(y: torch.Tensor, inv: torch.Tensor, edge: torch.Tensor, slope: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`laplace_bits` and (``slope``) its derivative in ``y``, in closed form: one pass of a dozen
    element-wise operations, where autograd's graph of the same expression ran ~70 (a fit's rate term over a
    350 k-latent table took 12.7 ms a step that way, as long as the field's own forward and backward). Each
    first operation makes a fresh tensor that the next ones work in, in place, in the order the formula is
    written, so the bits are the same to the last one (the pinned bundles hold them). ``inv`` and ``edge``:
    what depends on the scales alone (:func:`scale_constants`), which a fit keeps between two refreshes of
    them: over 1 M latents on 2 cores that and the in-place work took a step's pricing from 25.7 ms to 16.6
    (medians of five runs taken in turn)."""
    m = y.abs()
    clear = m >= 0.5
    # the bin over 0 (|y| < 1/2) holds 1 - e^(-(|y| + 1/2) / s) / 2 - e^((|y| - 1/2) / s) / 2
    e_hi = ((m + 0.5) * inv).neg_().exp_()
    e_lo = ((m.clamp_max(0.5) - 0.5) * inv).exp_()
    around = (e_hi * -0.5).add_(1.0).sub_(e_lo * 0.5).clamp_min_(2.0 ** -24)
    bits = torch.where(clear, ((m - 0.5) * inv).div_(LN2).add_(edge), around.log2().neg_())
    if not slope:
        return bits, None
    d = torch.where(clear, inv, (0.5 * inv * (e_lo - e_hi)).div_(around)).div_(LN2)
    return bits, d.mul_(torch.sign(y))


def scale_constants(scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 / scale`` and the bits of the bin ``[1/2, 3/2]`` under it (each step further out adds
    ``1 / (scale ln 2)``): what :func:`laplace_bits` needs of the scales."""
    inv = 1.0 / scale
    return inv, (-inv).expm1_().mul_(-0.5).log2_().neg_()


class _PricedBits(torch.autograd.Function):
    """The bits of ``y`` under per-element Laplace scales, whose backward is the closed-form slope (computed
    only when ``y`` wants a gradient: a bundle's pricing under no_grad skips it)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, inv: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        bits, slope = _bits_and_slope(y, inv, edge, slope=ctx.needs_input_grad[0])
        ctx.save_for_backward(slope)
        return bits.sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def scale_map(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...],
              scales: torch.Tensor | None) -> torch.Tensor:
    """``(rows, channels)``: each latent's Laplace scale, that of its block (:func:`latent_bits`), so that the
    whole table is priced in one pass; ``scales`` already laid so (:func:`fit_scales` in context: the first of
    its scales and centres) as they are."""
    if scales is not None and scales.ndim == 3:
        return scales[0]
    y = table.detach().reshape(len(table), -1)
    out = torch.empty_like(y)
    for i, (a, b, c) in enumerate(blocks):
        out[a:b, c] = scales[i] if scales is not None else y[a:b, c].abs().mean().clamp_min(MIN_SCALE)
    return out


def latent_bits(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float,
                scales: torch.Tensor | None = None,
                constants: tuple[torch.Tensor, torch.Tensor] | None = None,
                centres: torch.Tensor | None = None) -> torch.Tensor:
    """Bits of the latent ``table`` ``(rows, 1, channels)`` at ``step``, block by block, each under a Laplace
    of its scale in ``scales`` (:func:`fit_scales`; None: the block's mean distance from 0, in steps), held
    constant for the gradient. ``constants``: :func:`scale_constants` of the blocks' scales laid over the table
    (:func:`scale_map`), which a fit keeps between two refreshes of the scales, in place of ``scales``.
    ``centres``: where each latent's Laplace is centred, in steps (its prediction: :func:`fit_scales`); else
    0, or the centres ``scales`` carries."""
    y = table.reshape(len(table), -1) / step
    if centres is None and scales is not None and scales.ndim == 3:
        centres = scales[1]
    if centres is not None:
        y = y - centres
    if constants is None:
        constants = scale_constants(scale_map(y, blocks, scales))
    return _PricedBits.apply(y, *constants)


@torch.no_grad()
def fit_scales(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float,
               shapes: tuple[tuple[int, ...], ...] | None = None) -> torch.Tensor:
    """Each block's Laplace scale (in steps) that codes its latents, rounded to ``step``, in the fewest bits:
    the best of :data:`SCALE_GRID` times their mean distance from 0 (priced from their histogram). But never
    below half the float latents' mean distance from 0: a block that still rounds all to 0 (a fresh one)
    would otherwise get the least scale, where one latent leaving 0 costs ~29 bits, and never grow (a tiny
    clip at lambda 0.5: 15.4 dB against 21.1 with the floor). Where latents code well the floor sits under
    the best scale (2 s of bikes, 16 KB: the same bytes and PSNR).

    With ``shapes``, each block's grid (:func:`grids`), a scale and a centre for every latent instead,
    ``(2, rows, channels)``, as the bundle codes a level: a grid of two axes or more plane by plane, each latent
    centred on its prediction from its rounded earlier neighbours, under the best scale for its class
    (:mod:`neofield.wavefront`); a line as a checkerboard, centred on 0: its anchors under the best scale for
    them, each other latent under the best for its class, which its rounded neighbours choose
    (:mod:`neofield.checkerboard`)."""
    x = table.reshape(len(table), -1) / step
    y = torch.round(x)
    grid = torch.tensor(SCALE_GRID, dtype=y.dtype, device=y.device)
    if shapes is None:  # one group a block
        return torch.cat([_best_scales(y[a:b, c], x[a:b, c], torch.zeros(b - a, dtype=torch.long, device=y.device),
                                       1, grid) for a, b, c in blocks])
    out = torch.zeros((2, *y.shape), dtype=y.dtype, device=y.device)
    for (a, b, c), shape in zip(blocks, shapes, strict=True):
        if wavefront.allowed(shape):
            centre, group = _predictions(y[a:b, c], shape)
            out[0, a:b, c] = _best_scales(y[a:b, c] - centre, x[a:b, c] - centre, group, wavefront.CLASSES,
                                          grid)[group]
            out[1, a:b, c] = centre
        else:
            group = _context_group(y[a:b, c], shape)
            out[0, a:b, c] = _best_scales(y[a:b, c], x[a:b, c], group, 1 + CLASSES, grid)[group]
    return out


def _predictions(values: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of a block's rounded latents' prediction (in steps) and class, in C order over ``shape``, as the
    coder finds them (:func:`neofield.wavefront.predict`, its middle symbol being 0 here): the median of the
    earlier neighbours there are, by whole-tensor operations on the grid: over the 353 k latents of 2 s of
    bikes, which a fit prices again every few steps, 25 ms where the coder's gathers (:func:`wavefront.residuals`)
    take 48."""
    g = values.reshape(shape).long()
    near, present = [], []
    for axis in range(len(shape)):
        pad = [0, 0] * len(shape)
        pad[2 * (len(shape) - 1 - axis)] = 1  # one in front along ``axis``: each node sees the one before it
        cut = [slice(None)] * len(shape)
        cut[axis] = slice(0, shape[axis])
        near.append(torch.nn.functional.pad(g, pad)[tuple(cut)])
        present.append(torch.nn.functional.pad(torch.ones_like(g, dtype=torch.bool), pad)[tuple(cut)])
    near, present = torch.stack(near, -1), torch.stack(present, -1)
    count = present.sum(-1)
    ordered = torch.where(present, near, torch.full_like(near, 1 << 40)).sort(-1).values  # those missing last
    low = ordered.gather(-1, ((count - 1).clamp_min(0) // 2)[..., None])[..., 0]
    high = ordered.gather(-1, (count // 2).clamp_max(len(shape) - 1)[..., None])[..., 0]
    pred = torch.where(count > 0, torch.div(low + high, 2, rounding_mode="floor"), torch.zeros_like(low))
    spread = torch.where(present, (near - pred[..., None]).abs(), 0).sum(-1) + pred.abs()
    group = torch.bucketize(spread, torch.tensor(wavefront.EDGES, device=g.device), right=True)
    return pred.reshape(-1).to(values.dtype), group.reshape(-1)


def _best_scales(symbols: torch.Tensor, values: torch.Tensor, group: torch.Tensor, groups: int,
                 grid: torch.Tensor) -> torch.Tensor:
    """:func:`fit_scales`' choice for each of ``groups`` groups of latents (``symbols`` rounded, ``values`` not,
    in steps; ``group`` each one's), ``(groups,)``, from one histogram of (group, distance from 0): a refresh
    of a fit's scales in context is a few operations per block, not per group (an empty group gets the least
    scale, and prices nothing)."""
    distance = symbols.abs().clamp_max(2 ** 20).long()
    top = int(distance.max()) + 1
    hist = torch.bincount(group * top + distance, minlength=groups * top).view(groups, top).to(torch.float64)
    n = hist.sum(1).clamp_min(1.0)
    at = torch.arange(top, dtype=torch.float64, device=symbols.device)
    candidates = (((hist @ at) / n).clamp_min(MIN_SCALE)[:, None] * grid.double()[None]).clamp_min(MIN_SCALE)
    used = hist.sum(0) > 0
    bits = (laplace_bits(at[used][None, None, :], candidates[:, :, None]) * hist[:, None, used]).sum(-1)
    best = candidates.gather(1, bits.argmin(1, keepdim=True)).squeeze(1)
    floats = torch.bincount(group, weights=values.abs().double(), minlength=groups) / n
    return torch.maximum(best, CONTINUOUS_FLOOR * floats).to(symbols.dtype)


def _context_group(symbols: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Each of a block's latents' group, in C order over ``shape``: 0 for an anchor, ``1 + class`` for the
    others (the classes computed on the CPU from the rounded latents, as a decoder computes them)."""
    first = anchors(shape)
    group = np.zeros(first.shape, np.int64)
    group[~first] = 1 + context_classes(symbols.cpu().numpy()[first].astype(np.int64), shape, 0)
    return torch.from_numpy(group).to(symbols.device)


@torch.no_grad()
def rounded_bits(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float,
                 scales: torch.Tensor | None = None) -> float:
    """:func:`latent_bits` of the latents rounded to ``step`` (centred where ``scales`` says): what steering
    aims at the target."""
    return latent_bits(torch.round(table / step) * step, blocks, step, scales).item()


@torch.no_grad()
def perturb_latents(table: nn.Parameter, step: float, hard: bool, gen: torch.Generator) -> tuple:
    """Move the latents to where quantization puts them: rounded to ``step`` (``hard``), or a uniform step's
    noise away. Returns what :func:`restore` puts back after the backward pass."""
    saved = table.detach().clone()
    if hard:
        table.copy_(torch.round(table / step) * step)
    else:
        table.add_((torch.rand(table.shape, generator=gen).to(table.device) - 0.5) * step)
    return table, saved
