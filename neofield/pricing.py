"""The rate term through a fit: the latents it prices, where lambda stands, and the scales it prices them with.

:mod:`.latent_rate` prices a table of latents in pure functions. A fit's rate term also carries state that
moves as the fit goes, and that a checkpoint and a rollback must carry with the weights: ``lam``, steered
toward a size or a PSNR, and ``scales``, each block's pricing refitted to the latents every
:data:`~.latent_rate.STEER_EVERY` steps. :class:`Pricing` holds both and the few lines of the loop that
move them, so that :func:`neofield.fit.fit` reads as a loop.
"""

from __future__ import annotations

import torch
from torch import nn

from .latent_rate import (STEER_EVERY, RateTerm, fit_scales, grids, latent_bits, perturb_latents, rated, rounded_bits,
                          scale_constants, scale_map, steer, steer_to_psnr)
from .probe import PsnrProbe
from .signal import Signal

STEER_PSNR_POINTS = 8_192  # points of the probe a fit steering lambda to a PSNR scores, every STEER_EVERY steps
STEER_PSNR_FROM = 0.2  # ... from this share of the steps on: before, the field is still far from any PSNR


class Pricing:
    """The rate term of one fit of ``field`` to ``signal``: ``MSE + lam * bits / points`` (:meth:`penalty`)."""

    def __init__(self, field: nn.Module, signal: Signal, term: RateTerm):
        self.term = term
        self.table, self.blocks = rated(field)
        self.shapes = grids(field)
        self.name = next(name for name, p in field.named_parameters() if p is self.table)  # what it rounds, not QAT
        self.n_points = signal.n_points
        self.probe = PsnrProbe(signal, STEER_PSNR_POINTS) if term.target_psnr is not None else None
        self.lam: float = term.lam
        self.scales: torch.Tensor | None = None  # fitted at the first refresh
        self._laid: tuple = (None, None)  # the scales laid over the table, and the constants made of them

    def penalty(self) -> torch.Tensor:
        """The loss's rate term: lambda times the latents' bits per point of the signal, differentiable."""
        if self._laid[0] is not self.scales:
            self._laid = (self.scales, scale_constants(scale_map(self.table, self.blocks, self.scales)))
        return self.lam / self.n_points * latent_bits(self.table, self.blocks, self.term.step, self.scales,
                                                      constants=self._laid[1])

    def refresh(self, field: nn.Module, step: int, total: int | None, final: bool, sync) -> None:
        """At the first step and every :data:`STEER_EVERY` after it, with the weights whole: each block's scales
        refitted to the latents, then lambda steered toward a size (by the bits of the rounded latents) or a
        PSNR (by the probe's, once the plan is known and the field past :data:`STEER_PSNR_FROM` of it).
        ``sync.from_main`` makes every rank of a process group take rank 0's lambda."""
        if self.scales is not None and step % STEER_EVERY:
            return
        self.scales = fit_scales(self.table, self.blocks, self.term.step, self.shapes)
        if self.term.target_bits is not None:
            bits = rounded_bits(self.table, self.blocks, self.term.step, self.scales)
            self.lam = sync.from_main(steer(self.lam, bits, self.term.target_bits))
        elif self.probe is not None and final and step >= STEER_PSNR_FROM * total:
            psnr = self.rounded_psnr(field)
            self.lam = sync.from_main(steer_to_psnr(self.lam, psnr, self.term.target_psnr))

    def perturb(self, hard: bool, gen: torch.Generator) -> tuple[nn.Parameter, torch.Tensor]:
        """The latents a step's noise away from their values, or rounded (``hard``, finetuning); the parameter and
        its float values to put back after the backward pass."""
        return perturb_latents(self.table, self.term.step, hard, gen)

    def rounded_psnr(self, field: nn.Module) -> float:
        """The probe's PSNR of ``field`` with its latents rounded to the step, as the bundle will hold them."""
        _, values = perturb_latents(self.table, self.term.step, True, None)
        try:
            return self.probe(field)
        finally:
            with torch.no_grad():
                self.table.copy_(values)

    def load(self, lam: float | None, scales: torch.Tensor | None) -> None:
        """A checkpoint's or a snapshot's lambda and scales (a ValueError where the scales are of another shape
        than this field's: a checkpoint of another model)."""
        if scales is not None:
            want = (2, len(self.table), self.table[0].numel()) if self.shapes is not None else (len(self.blocks),)
            if tuple(scales.shape) != want:  # a scale per block, or (priced in context) a scale and a centre a latent
                raise ValueError("its latents' scales are of another shape")
        self.lam = lam if lam is not None else self.lam
        self.scales = scales
