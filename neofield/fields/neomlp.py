"""NeoMLP (Kofinas et al., ICLR 2025): an MLP made a complete graph of tokens.

One coordinate ``x in R^I`` becomes ``I`` input tokens (random Fourier
features -> Linear, plus a learned embedding per input); ``H`` hidden and
``O`` output tokens are learned embeddings. ``L`` pre-norm residual layers of
self-attention + FFN mix the ``I + H + O`` tokens, and each output token is
read out to one scalar.

The code keeps the two kinds of parameters apart:

* :class:`NeoMLPBackbone` - everything shared: RFF projection, input
  embeddings, the transformer layers and the read-out.
* :class:`Latents` - hidden + output embeddings, one *set* per signal (the
  paper's nu-sets) or per time segment of one signal.

:class:`NeoMLPField` ties a backbone to a latent table and picks, for each
coordinate, the latent set of its time segment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .attention import ATTENTION
from .encodings import RandomFourierFeatures
from .presets import PRESETS, NeoMLPConfig, Preset, build_config  # noqa: F401  (re-exported)


ENCODINGS = ("rff", "linear")


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


class Latents(nn.Module):
    """A table of latent sets: ``(sets, hidden + output tokens, dim)``.

    Initialised N(0, 1e-3) as in the paper, so that at the start the output
    tokens differ only slightly and the backbone does the early work.
    """

    def __init__(self, sets: int, tokens: int, dim: int, init_std: float = 1e-3 ** 0.5):
        super().__init__()
        self.table = nn.Parameter(torch.randn(sets, tokens, dim) * init_std)

    def __len__(self) -> int:
        return self.table.shape[0]

    def forward(self, ids: torch.Tensor | None) -> torch.Tensor:
        return self.table[ids]


INTERPOLATIONS = ("nearest", "linear")


@dataclass(frozen=True)
class Segmentation:
    """Which latent sets serve a coordinate: ``segments`` equal slices of field
    time ``[t_start, t_end)``, read from input ``time_index``.

    ``nearest``: a point takes the set of its slice, so the field is piecewise
    constant in its latents and a time between two video frames repeats one.
    ``linear``: set ``k`` sits at the centre of slice ``k`` and a point blends
    the two sets around it, so the latents vary continuously in time. With one
    set per frame the centres are the frame times, and the training points
    see exactly their own frame's set, as with ``nearest``.
    """

    segments: int = 1
    t_start: float = -1.0
    t_end: float = 1.0
    time_index: int = -1
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")

    def position(self, coords: torch.Tensor) -> torch.Tensor:
        """Field time in units of slices from ``t_start``."""
        t = coords[:, self.time_index].float()
        return (t - self.t_start) / (self.t_end - self.t_start) * self.segments

    def ids(self, coords: torch.Tensor) -> torch.Tensor:
        """The slice each coordinate falls in (clamped to the table)."""
        return self.position(coords).floor().long().clamp_(0, self.segments - 1)

    def neighbours(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i0, i1, w)``: the sets whose centres bracket each coordinate and the
        weight of ``i1``; before the first centre and after the last, the end set."""
        pos = self.position(coords) - 0.5  # in units of slices from the first centre
        i0 = pos.floor().clamp_(0, max(self.segments - 2, 0))
        w = (pos - i0).clamp_(0.0, 1.0)
        i0 = i0.long()
        return i0, (i0 + 1).clamp_(max=self.segments - 1), w

    def to_dict(self) -> dict:
        return asdict(self)


class NeoMLPField(nn.Module):
    """A neural field: a backbone plus one latent set per time segment.

    With ``segments == 1`` this is the paper's single-signal NeoMLP. More
    segments give each stretch of time its own hidden/output tokens over the
    shared backbone, which on a CPU budget buys several dB (see
    docs/cpu-defaults.md) and lets a decoder touch only the latents it needs.
    """

    def __init__(self, config: NeoMLPConfig, segmentation: Segmentation = Segmentation()):
        super().__init__()
        self.config = config
        self.segmentation = segmentation
        self.backbone = NeoMLPBackbone(config)
        self.latents = Latents(segmentation.segments, config.hidden_tokens + config.out_features, config.dim)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Field coordinates ``(B, I)`` -> field values ``(B, O)``."""
        seg = self.segmentation
        if len(self.latents) == 1:
            lat = self.latents.table.expand(coords.shape[0], -1, -1)
        elif seg.interpolation == "nearest":
            lat = self.latents(seg.ids(coords))
        else:
            i0, i1, w = seg.neighbours(coords)
            lat = torch.lerp(self.latents(i0), self.latents(i1), w[:, None, None])
        return self.backbone(coords, lat)

    def num_parameters(self) -> dict[str, int]:
        backbone = sum(p.numel() for p in self.backbone.parameters())
        latents = self.latents.table.numel()
        return {"backbone": backbone, "latents": latents, "total": backbone + latents}
