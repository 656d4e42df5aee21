"""NeoMLP (Kofinas et al., ICLR 2025): an MLP made a complete graph of tokens.

One coordinate ``x in R^I`` becomes ``I`` input tokens (random Fourier
features -> Linear, plus a learned embedding per input); ``H`` hidden and
``O`` output tokens are learned embeddings. ``L`` pre-norm residual layers of
self-attention + FFN mix the ``I + H + O`` tokens, and each output token is
read out to one scalar.

The code keeps the two kinds of parameters apart:

* :class:`NeoMLPBackbone` - everything shared: RFF projection, input
  embeddings, the transformer layers and the read-out.
* :class:`~.layouts.Latents` - hidden + output embeddings, one *set* per
  signal (the paper's nu-sets) or per time segment of one signal.

:class:`NeoMLPField` ties a backbone to a latent table; a latent layout
(:mod:`.layouts`) says which sets serve each coordinate.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import ATTENTION
from .encodings import RandomFourierFeatures
from .layouts import LatentLayout, Latents, TimeSegments
from .presets import ENCODINGS, PRESETS, NeoMLPConfig, Preset, build_config  # noqa: F401  (re-exported)


class Block(nn.Module):
    """Pre-norm residual layer: ``T + Attn(LN(T))``, then ``T + FFN(LN(T))``."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, attention: str):
        super().__init__()
        # Parameter-free norms and bias-free q/k/v: with these the parameter
        # counts equal the paper's exactly (182,017 audio, 3,189,249 video).
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = ATTENTION[attention](dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor, keep: int | None = None) -> torch.Tensor:
        """``keep = K`` returns only the last ``K`` tokens, computed exactly as in the
        full layer: the last layer of the model needs no more than its output tokens."""
        if keep is None:
            x = x + self.attn(self.norm1(x))
        else:
            x = x[:, -keep:] + self.attn(self.norm1(x), queries=keep)
        return x + self.ffn(self.norm2(x))


class NeoMLPBackbone(nn.Module):
    """The shared part of NeoMLP: coordinates + latent tokens -> output scalars."""

    def __init__(self, config: NeoMLPConfig):
        super().__init__()
        c = self.config = config
        if c.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {sorted(ATTENTION)}")
        if c.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {c.encoding!r}")
        if c.encoding == "rff":
            self.rff = RandomFourierFeatures(c.in_features, c.rff_dim, c.rff_sigma, c.seed)
            self.rff_proj = nn.Linear(c.rff_dim, c.dim)
        else:  # each coordinate times a learned vector: the ablation without Fourier features
            self.input_scale = nn.Parameter(torch.empty(c.in_features, c.dim))
        self.input_embed = nn.Parameter(torch.empty(c.in_features, c.dim))
        self.blocks = nn.ModuleList(Block(c.dim, c.ffn_dim, c.heads, c.attention) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.dim, elementwise_affine=False)
        self.readout = nn.Linear(c.dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Paper: RFF projection N(0, 2 / D_RFF) so that input tokens start near
        # unit variance; input embeddings N(0, 1); read-out bias zero.
        if self.config.encoding == "rff":
            nn.init.normal_(self.rff_proj.weight, std=(2.0 / self.config.rff_dim) ** 0.5)
            nn.init.zeros_(self.rff_proj.bias)
        else:
            nn.init.normal_(self.input_scale, std=1.0)
        nn.init.normal_(self.input_embed, std=1.0)
        nn.init.zeros_(self.readout.bias)

    def forward(self, coords: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``coords (B, I)`` and ``latents (B, H+O, D)`` -> outputs ``(B, O)``."""
        if self.config.encoding == "rff":
            inputs = self.rff_proj(self.rff(coords)) + self.input_embed
        else:
            inputs = coords.float()[..., None] * self.input_scale + self.input_embed
        tokens = torch.cat([inputs, latents.to(inputs.dtype)], dim=1)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # The last layer computes the output tokens alone (its other tokens would be
            # discarded): the same values, for ~25 % less work per point on `tiny`.
            tokens = block(tokens, keep=self.config.out_features if i == last else None)
        return self.readout(self.norm(tokens)).squeeze(-1)


class NeoMLPField(nn.Module):
    """A neural field: a backbone plus a table of latent sets laid over the signal by ``layout``.

    With one set this is the paper's single-signal NeoMLP. The default layout
    gives each stretch of time its own hidden/output tokens over the shared
    backbone, which on a CPU budget buys several dB (see docs/cpu-defaults.md)
    and lets a decoder touch only the latents it needs.
    """

    def __init__(self, config: NeoMLPConfig, layout: LatentLayout = TimeSegments()):
        super().__init__()
        self.config = config
        self.layout = layout
        self.backbone = NeoMLPBackbone(config)
        self.latents = Latents(layout.sets, config.hidden_tokens + config.out_features, config.dim)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Field coordinates ``(B, I)`` -> field values ``(B, O)``."""
        return self.backbone(coords, self.layout.gather(self.latents.table, coords))

    def num_parameters(self) -> dict[str, int]:
        backbone = sum(p.numel() for p in self.backbone.parameters())
        latents = self.latents.table.numel()
        return {"backbone": backbone, "latents": latents, "total": backbone + latents}
