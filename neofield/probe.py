"""How well a field fits its signal, measured on points: the fit's loss and the PSNR that searches score.

The fit loop minimises :func:`masked_mse`; rate control's searches and a fit steering lambda to a PSNR score
a field on a :class:`PsnrProbe`, a fixed sample of the signal's points, in the units ``neofield psnr``
reports. Below the fit and rate control, above the signal; it knows nothing of bundles.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .signal import Signal


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over the outputs each point owns: an audio-visual field's video points
    are scored on RGB only, its audio points on the audio channels only."""
    return ((pred.float() - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def mse_to_psnr(mse: float) -> float:
    """PSNR for values in [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")


PSNR_POINTS = 65_536  # points of the fixed sample a PSNR search scores


class PsnrProbe:
    """PSNR of a field on one fixed sample of the signal's points: cheap enough to
    call a dozen times in a search, and in the units ``neofield psnr`` reports
    (8-bit video and [-1, 1] audio both map to a peak-to-peak of 2)."""

    def __init__(self, signal: Signal, points: int = PSNR_POINTS, seed: int = 0):
        coords, target, mask = signal.sample(min(points, signal.n_points), torch.Generator().manual_seed(seed))
        if signal.kind == "audiovisual":  # the target is the picture's
            keep = mask[:, :3].any(dim=1)
            coords, target, mask = coords[keep], target[keep], mask[keep]
        self.coords, self.target, self.mask = coords, target, mask

    @torch.no_grad()
    def __call__(self, field: nn.Module) -> float:
        device = next(field.parameters()).device
        pred = torch.cat([field(c.to(device)).float().cpu() for c in self.coords.split(8192)])
        return mse_to_psnr(masked_mse(pred, self.target, self.mask).item())
