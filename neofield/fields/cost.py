"""What one decoded point costs: the multiply-adds of a field's forward pass, per point.

Counted, not estimated by hand: torch's :class:`~torch.utils.flop_counter.FlopCounterMode` counts the
matrix products of one forward pass (``mm``, ``bmm``, ``addmm``, ... : two flops a multiply-add), and the
latent reads, which are interpolations rather than products, are added from the layout's own count
(:meth:`~.pyramid.PyramidLayout.macs_per_point`, a grid field's pyramids, or the blend of two time
segments' sets). Element-wise work (activations, norms, softmax) is left out, as is usual for MAC counts.

A decode evaluates the whole field at each point it renders (a video-with-sound field gives its sound
outputs at every pixel too), so a pixel and a sample cost the same: the figure ``neofield info`` reports
as ``macs_per_pixel`` and ``macs_per_sample``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

POINTS = 64  # the batch counted (the count is per point, and the same for any batch)


def matmul_macs(field: nn.Module, in_features: int) -> float:
    """Multiply-adds of the matrix products of one forward pass, per point."""
    coords = torch.zeros(POINTS, in_features)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        field(coords)
    return counter.get_total_flops() / 2 / POINTS


def read_macs(field: nn.Module) -> int:
    """Multiply-adds of the latent reads of one point: interpolating grid nodes or time segments' sets."""
    layout = getattr(field, "layout", None)
    if layout is not None and hasattr(layout, "macs_per_point"):
        return layout.macs_per_point()
    if layout is not None and getattr(layout, "interpolation", None) == "linear":  # two sets blended
        return 2 * field.latents.table[0].numel()
    pyramids = getattr(field, "latents", None)
    if isinstance(pyramids, nn.ModuleDict):  # a grid field's pyramids
        return sum(p.macs_per_point() for p in pyramids.values())
    return 0


def macs_per_point(field: nn.Module) -> int:
    """Multiply-adds one decoded point costs (module docstring)."""
    in_features = field.config.in_features
    was = field.training
    field.eval()
    try:
        return round(matmul_macs(field, in_features) + read_macs(field))
    finally:
        field.train(was)
