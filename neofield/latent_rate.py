"""The rate of a field's latents, differentiable: what a fit with ``--lambda`` adds to its loss.

Issue 24. A fit with a rate term minimises ``MSE + lambda * bits / points``: ``bits`` is what the latents
would cost coded at a fixed quantization step (:data:`LATENT_STEP`), each block of them (a pyramid's level
and channel: :meth:`~neofield.fields.pyramid.PyramidLayout.blocks`) under a zero-mean discrete Laplace.
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

from dataclasses import dataclass

import torch
from torch import nn

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


def rated(field: nn.Module) -> tuple[nn.Parameter, tuple[tuple[int, int, int], ...]]:
    """The latent table a rate term prices and its blocks; a ValueError for a field without a pyramid."""
    blocks = getattr(getattr(field, "layout", None), "blocks", None)
    if blocks is None:
        raise ValueError("a rate term prices the latent pyramids of a neogrid field")
    return field.latents.table, blocks()


def laplace_bits(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``-log2`` of the probability of the unit bin around each ``y`` under a zero-mean Laplace of ``scale``
    (both in steps): the integral over ``[|y| - 1/2, |y| + 1/2]``."""
    m = y.abs()
    lo, hi = m - 0.5, m + 0.5
    outside = 0.5 * (torch.exp(-lo.clamp_min(0) / scale) - torch.exp(-hi / scale))  # the bin clear of 0
    around = 1 - 0.5 * torch.exp(-hi / scale) - 0.5 * torch.exp(lo.clamp_max(0) / scale)  # the bin over 0
    p = torch.where(lo >= 0, outside, around)
    return -torch.log2(p.clamp_min(2.0 ** -24))


def latent_bits(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float,
                scales: torch.Tensor | None = None) -> torch.Tensor:
    """Bits of the latent ``table`` ``(rows, 1, channels)`` at ``step``, block by block, each under a Laplace
    of its scale in ``scales`` (:func:`fit_scales`; None: the block's mean distance from 0), held constant for
    the gradient."""
    y = table.reshape(len(table), -1) / step
    total = y.new_zeros(())
    for i, (a, b, c) in enumerate(blocks):
        part = y[a:b, c]
        scale = scales[i] if scales is not None else part.detach().abs().mean().clamp_min(MIN_SCALE)
        total = total + laplace_bits(part, scale).sum()
    return total


@torch.no_grad()
def fit_scales(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float) -> torch.Tensor:
    """Each block's Laplace scale (in steps) that codes its latents, rounded to ``step``, in the fewest bits:
    the best of :data:`SCALE_GRID` times their mean distance from 0. But never below half the float latents'
    mean distance from 0: a block that still rounds all to 0 (a fresh one) would otherwise get the least
    scale, where one latent leaving 0 costs ~29 bits, and never grow (a tiny clip at lambda 0.5: 15.4 dB
    against 21.1 with the floor). Where latents code well the floor sits under the best scale (2 s of bikes,
    16 KB: the same bytes and PSNR)."""
    x = table.reshape(len(table), -1) / step
    y = torch.round(x)
    grid = torch.tensor(SCALE_GRID, dtype=y.dtype, device=y.device)
    out = []
    for a, b, c in blocks:
        part = y[a:b, c]
        candidates = (part.abs().mean().clamp_min(MIN_SCALE) * grid).clamp_min(MIN_SCALE)
        best = candidates[laplace_bits(part[None, :], candidates[:, None]).sum(dim=1).argmin()]
        out.append(torch.maximum(best, CONTINUOUS_FLOOR * x[a:b, c].abs().mean()))
    return torch.stack(out)


@torch.no_grad()
def rounded_bits(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float,
                 scales: torch.Tensor | None = None) -> float:
    """:func:`latent_bits` of the latents rounded to ``step``: what steering aims at the target."""
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
