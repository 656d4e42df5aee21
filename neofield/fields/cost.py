"""What one decoded point costs: the multiply-adds of a field's forward pass, per point.

Counted, not estimated by hand: torch's :class:`~torch.utils.flop_counter.FlopCounterMode` counts the
matrix products of one forward pass (``mm``, ``bmm``, ``addmm``, ... : two flops a multiply-add), and the
latent reads, which are interpolations rather than products, are added from the layout's own count
(:meth:`~.pyramid.PyramidLayout.macs_per_point`, a grid field's pyramids, or the blend of two time
segments' sets). Element-wise work (activations, norms, softmax) is left out, as is usual for MAC counts.

A decode evaluates the field at each point it renders. A field that computes only the outputs asked for
(``picks_outputs``: the latent-grid fields) is counted for one stream's outputs when ``outputs`` names them,
so a video with sound's pixel and sample cost what their decodes pay: the figures ``neofield info`` reports
as ``macs_per_pixel`` and ``macs_per_sample``. Other fields give every output at every point.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

POINTS = 64  # the batch counted (the count is per point, and the same for any batch)


def matmul_macs(field: nn.Module, in_features: int, outputs: slice | None = None) -> float:
    """Multiply-adds of the matrix products of one forward pass, per point (of ``outputs`` alone, where the
    field computes only those asked for)."""
    coords = torch.zeros(POINTS, in_features)
    picks = outputs is not None and getattr(field, "picks_outputs", False)
    with torch.no_grad():
        run = (lambda: field(coords, outputs)) if picks else (lambda: field(coords))
        run()  # uncounted: fills what a decode keeps between its chunks (NeoGrid's folded weights)
        with FlopCounterMode(display=False) as counter:
            run()
    return counter.get_total_flops() / 2 / POINTS


def read_macs(field: nn.Module, outputs: slice | None = None) -> int:
    """Multiply-adds of the latent reads of one point: interpolating grid nodes or time segments' sets (a grid
    field's, of the pyramids ``outputs`` read)."""
    layout = getattr(field, "layout", None)
    if layout is not None and hasattr(layout, "macs_per_point"):
        return layout.macs_per_point()
    if layout is not None and getattr(layout, "interpolation", None) == "linear":  # two sets blended
        return 2 * field.latents.table[0].numel()
    pyramids = getattr(field, "latents", None)
    if isinstance(pyramids, nn.ModuleDict):  # a grid field's pyramids
        return sum(pyramids[name].macs_per_point() for name in field.streams(outputs))
    return 0


def macs_per_point(field: nn.Module, outputs: slice | None = None) -> int:
    """Multiply-adds one decoded point costs, of ``outputs`` alone where a decode computes no more (module
    docstring)."""
    in_features = field.config.in_features
    was = field.training
    field.eval()
    try:
        return round(matmul_macs(field, in_features, outputs) + read_macs(field, outputs))
    finally:
        field.train(was)
