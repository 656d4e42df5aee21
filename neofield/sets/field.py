"""The set field: one NeoMLP backbone, one table of latent sets indexed by signal.

:class:`SetField` is a :class:`~neofield.fields.neomlp.NeoMLPField` whose
latent table holds ``items x segments_per_item`` sets and whose forward pass
takes each point's set from its last coordinate column (see
:mod:`.signals`). Because it *is* a NeoMLPField, the bundle code stores it
unchanged, and one item's rows make an ordinary single-clip field
(:func:`neofield.collection.item_field`).

The latent table's optimiser is a choice the paper leaves open, measured in
``benchmarks/nusets.py``:

* ``adam``: plain (dense) Adam over the whole table. Every step moves every
  row, also the ones the batch did not touch, by the momentum of earlier
  steps, and costs O(table) work.
* ``lazy``: Adam on the touched rows only (what ``torch.optim.SparseAdam`` does,
  written for dense gradients so that gradient clipping and bfloat16 work as
  for any field): an untouched row keeps its value and its moments.
"""

from __future__ import annotations

import torch

from ..fields.layouts import TimeSegments
from ..fields.neomlp import NeoMLPField
from ..fields.presets import NeoMLPConfig

LATENT_OPTIMIZERS = ("adam", "lazy")


class SetField(NeoMLPField):
    """A backbone plus ``items * segments_per_item`` latent sets; coordinates carry the set index last."""

    row_sparse = ("latents.table",)  # a step touches a batch's sets only: data-parallel fits send just those rows

    def __init__(self, config: NeoMLPConfig, layout: TimeSegments, segments_per_item: int,
                 latent_optimizer: str = "lazy", latent_lr_scale: float = 1.0):
        super().__init__(config, layout)
        if latent_optimizer not in LATENT_OPTIMIZERS:
            raise ValueError(f"latent optimizer must be one of {', '.join(LATENT_OPTIMIZERS)}")
        if layout.segments % segments_per_item:
            raise ValueError("the latent table must hold whole items")
        self.segments_per_item = segments_per_item
        self.latent_optimizer = latent_optimizer
        self.latent_lr_scale = latent_lr_scale

    @property
    def items(self) -> int:
        return len(self.latents) // self.segments_per_item

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, I + 1)``: field coordinates and the latent set's index -> field values ``(B, O)``."""
        ids = coords[:, -1].long()
        return self.backbone(coords[:, :-1], self.latents(ids))

    def freeze_backbone(self) -> None:
        """Algorithm 2: only the latents learn."""
        self.backbone.requires_grad_(False)

    def make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam for the backbone; for the table, dense or lazy Adam (module docstring). The fit loop sets
        every group's rate from its schedule; ``lr_scale`` keeps the table's ratio to the backbone's."""
        groups = [{"params": [p for p in self.backbone.parameters() if p.requires_grad], "lr_scale": 1.0},
                  {"params": [self.latents.table], "lr_scale": self.latent_lr_scale,
                   "lazy": self.latent_optimizer == "lazy"}]
        return LatentAdam([g for g in groups if g["params"]], lr=lr)


class LatentAdam(torch.optim.Adam):
    """Adam whose ``lazy`` groups update only the rows (first axis) with a non-zero gradient.

    The state has Adam's keys (``step``, ``exp_avg``, ``exp_avg_sq``), so
    checkpoints and the fit loop's rollback save and restore it unchanged. Bias
    correction counts the table's steps, as ``SparseAdam`` does.
    """

    def step(self, closure=None):
        lazy = [p for g in self.param_groups if g.get("lazy") for p in g["params"] if p.grad is not None]
        grads = [p.grad for p in lazy]
        for p in lazy:  # hidden from Adam's own step
            p.grad = None
        try:
            loss = super().step(closure)
        finally:
            for p, g in zip(lazy, grads):
                p.grad = g
        with torch.no_grad():
            for group in self.param_groups:
                if group.get("lazy"):
                    for p in group["params"]:
                        if p.grad is not None:
                            self._lazy_step(p, group)
        return loss

    def _lazy_step(self, p: torch.Tensor, group: dict) -> None:
        beta1, beta2 = group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        rows = p.grad.flatten(1).ne(0).any(dim=1).nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        state["step"] += 1
        step = float(state["step"])
        g = p.grad[rows]
        m = state["exp_avg"][rows].mul_(beta1).add_(g, alpha=1 - beta1)
        v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        state["exp_avg"][rows], state["exp_avg_sq"][rows] = m, v
        m_hat = m / (1 - beta1 ** step)
        v_hat = v / (1 - beta2 ** step)
        p[rows] -= group["lr"] * m_hat / (v_hat.sqrt() + group["eps"])
