"""The rate of a field's latents, differentiable: what a fit with ``--lambda`` adds to its loss.

Issue 24. A fit with a rate term minimises ``MSE + lambda * bits / points``: ``bits`` is what the latents
would cost coded at a fixed quantization step (:data:`LATENT_STEP`), each block of them (a pyramid's level
and channel: :meth:`~neofield.fields.pyramid.PyramidLayout.blocks`) under a zero-mean discrete Laplace
whose scale is the block's mean distance from 0, the maximum-likelihood one. So the fit learns latents that
are cheap to code as well as right: most of a fine level's nodes fall to 0, the detail stays where it pays.

While fitting, the latents are taken a uniform step's noise away from their float values (what rounding
would do to them, on average, with a gradient); in the finetuning phase at the end, rounded to the step
(straight-through), as the bundle stores them. The bundle codes their symbols under Laplace models fitted
to them (:class:`neofield.entropy.LaplaceModel`), so the bits here are an estimate of those bytes, not
the bytes themselves. This module knows nothing of the bundle; the encoder hands the bundle the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LATENT_STEP = 0.2  # the latents' quantization step under a rate term (docs/rate-term.md)
MIN_SCALE = 0.05  # a block's Laplace scale, in steps, never below this (a block all 0 still has a model)


@dataclass(frozen=True)
class RateTerm:
    """``lam``: the weight of the latents' bits per point of the signal in the loss; ``step``: their
    quantization step."""

    lam: float
    step: float = LATENT_STEP

    def to_dict(self) -> dict:
        return {"lambda": self.lam, "step": self.step}


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


def latent_bits(table: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], step: float) -> torch.Tensor:
    """Bits of the latent ``table`` ``(rows, 1, channels)`` at ``step``, block by block, each under its own
    maximum-likelihood Laplace (its scale held constant for the gradient)."""
    y = table.reshape(len(table), -1) / step
    total = y.new_zeros(())
    for a, b, c in blocks:
        part = y[a:b, c]
        scale = part.detach().abs().mean().clamp_min(MIN_SCALE)
        total = total + laplace_bits(part, scale).sum()
    return total


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
