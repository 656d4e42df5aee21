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

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from .attention import ATTENTION
from .encodings import RandomFourierFeatures


@dataclass(frozen=True)
class NeoMLPConfig:
    """Architecture of a NeoMLP backbone (the signal fixes ``in/out_features``)."""

    dim: int = 64  # token width D
    ffn_dim: int = 256
    heads: int = 4
    layers: int = 3
    rff_dim: int = 512  # cos + sin features per input
    rff_sigma: float | tuple[float, ...] = 20.0  # one value, or one per input
    hidden_tokens: int = 6
    attention: str = "linear"
    in_features: int = 1
    out_features: int = 1
    seed: int = 0  # regenerates the RFF bank

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NeoMLPConfig:
        d = dict(d)
        if isinstance(d.get("rff_sigma"), list):
            d["rff_sigma"] = tuple(d["rff_sigma"])
        return cls(**d)


@dataclass(frozen=True)
class Preset:
    """A model size plus the settings measured to suit it.

    RFF sigma depends on the axis: pictures (x, y and video time, all in
    [-1, 1]) want low frequencies on a CPU budget, while audio time (200/7
    units per second) needs high ones. An audio-visual field gets the picture
    sigma on x, y and the audio sigma on its shared time axis.
    """

    model: NeoMLPConfig
    lr: float
    warmup_steps: int
    video_sigma: float
    audio_sigma: float
    description: str

    def sigma(self, kind: str) -> float | tuple[float, ...]:
        if kind == "audio":
            return self.audio_sigma
        if kind == "audiovisual":
            return (self.video_sigma, self.video_sigma, self.audio_sigma)
        return self.video_sigma


PRESETS: dict[str, Preset] = {
    # The paper's configurations (Table 7 of arXiv 2412.08731), sigma 20. The
    # paper trains them for thousands of GPU epochs at lr 5e-3 / 5e-4 with no
    # warm-up; on a CPU budget they need a warm-up and the rates below.
    "audio": Preset(NeoMLPConfig(dim=64, ffn_dim=256, heads=4, layers=3, rff_dim=512, hidden_tokens=6),
                    lr=3e-3, warmup_steps=100, video_sigma=20.0, audio_sigma=20.0,
                    description="the paper's audio config (D 64, 3 layers, 8 tokens for mono audio)"),
    "video": Preset(NeoMLPConfig(dim=256, ffn_dim=1024, heads=8, layers=4, rff_dim=128, hidden_tokens=10),
                    lr=5e-4, warmup_steps=200, video_sigma=20.0, audio_sigma=20.0,
                    description="the paper's video config (D 256, 4 layers, 16 tokens for RGB video); a GPU model"),
    # CPU presets (docs/cpu-defaults.md): a few epochs fit in minutes on two cores.
    "small": Preset(NeoMLPConfig(dim=48, ffn_dim=192, heads=4, layers=2, rff_dim=256, hidden_tokens=3),
                    lr=3e-3, warmup_steps=50, video_sigma=1.0, audio_sigma=10.0,
                    description="CPU default for sound"),
    "tiny": Preset(NeoMLPConfig(dim=32, ffn_dim=128, heads=2, layers=2, rff_dim=128, hidden_tokens=2),
                   lr=5e-3, warmup_steps=30, video_sigma=1.0, audio_sigma=10.0,
                   description="CPU default for pictures: fastest per point"),
}


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class NeoMLPBackbone(nn.Module):
    """The shared part of NeoMLP: coordinates + latent tokens -> output scalars."""

    def __init__(self, config: NeoMLPConfig):
        super().__init__()
        c = self.config = config
        if c.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {sorted(ATTENTION)}")
        self.rff = RandomFourierFeatures(c.in_features, c.rff_dim, c.rff_sigma, c.seed)
        self.rff_proj = nn.Linear(c.rff_dim, c.dim)
        self.input_embed = nn.Parameter(torch.empty(c.in_features, c.dim))
        self.blocks = nn.ModuleList(Block(c.dim, c.ffn_dim, c.heads, c.attention) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.dim, elementwise_affine=False)
        self.readout = nn.Linear(c.dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Paper: RFF projection N(0, 2 / D_RFF) so that input tokens start near
        # unit variance; input embeddings N(0, 1); read-out bias zero.
        nn.init.normal_(self.rff_proj.weight, std=(2.0 / self.config.rff_dim) ** 0.5)
        nn.init.zeros_(self.rff_proj.bias)
        nn.init.normal_(self.input_embed, std=1.0)
        nn.init.zeros_(self.readout.bias)

    def forward(self, coords: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``coords (B, I)`` and ``latents (B, H+O, D)`` -> outputs ``(B, O)``."""
        inputs = self.rff_proj(self.rff(coords)) + self.input_embed
        tokens = torch.cat([inputs, latents.to(inputs.dtype)], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        out = tokens[:, -self.config.out_features:]
        return self.readout(self.norm(out)).squeeze(-1)


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


@dataclass(frozen=True)
class Segmentation:
    """Which latent set serves a coordinate: ``segments`` equal slices of field
    time ``[t_start, t_end)``, read from input ``time_index``."""

    segments: int = 1
    t_start: float = -1.0
    t_end: float = 1.0
    time_index: int = -1

    def ids(self, coords: torch.Tensor) -> torch.Tensor:
        t = coords[:, self.time_index].float()
        pos = (t - self.t_start) / (self.t_end - self.t_start) * self.segments
        return pos.floor().long().clamp_(0, self.segments - 1)

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
        if len(self.latents) == 1:
            lat = self.latents.table.expand(coords.shape[0], -1, -1)
        else:
            lat = self.latents(self.segmentation.ids(coords))
        return self.backbone(coords, lat)

    def num_parameters(self) -> dict[str, int]:
        backbone = sum(p.numel() for p in self.backbone.parameters())
        latents = self.latents.table.numel()
        return {"backbone": backbone, "latents": latents, "total": backbone + latents}


def build_config(preset: str, in_features: int, out_features: int, kind: str | None = None,
                 **overrides) -> NeoMLPConfig:
    """The preset's architecture for a signal with the given in/out sizes.

    ``kind`` (video, image, audio, audiovisual) picks the per-axis RFF sigma;
    without it the preset's picture sigma is used for every input.
    """
    p = PRESETS[preset]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    sigma = p.sigma(kind) if kind else p.video_sigma
    return replace(p.model, in_features=in_features, out_features=out_features,
                   **{"rff_sigma": sigma, **overrides})
