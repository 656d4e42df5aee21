"""Baseline neural fields to measure NeoMLP against: SIREN, SPDER and an RFF-MLP.

Both are plain coordinate MLPs with NeoMLPField's call convention, so that
neofield's own ``fit`` loop, ``render_media`` and ``evaluate`` run them
unchanged: ``forward(coords (B, I)) -> (B, O)`` in field units, a
``num_parameters()`` split like NeoMLP's (an MLP has no latents), and a
frozen ``config`` carrying ``in_features``/``out_features``.

They take the signal's field coordinates as they are (video x, y, t in
[-1, 1]; audio time at 200/7 units per second, +-100 for 7 s), which is how
the NeoMLP paper fed its SIREN and RFFNet baselines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import pairwise

import torch
from torch import nn

from .encodings import rff_frequencies


def _count(module: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in module.parameters())
    return {"backbone": total, "latents": 0, "total": total}


# ------------------------------------------------------------------ SIREN ----
@dataclass(frozen=True)
class SirenConfig:
    """``layers`` linear layers in all: ``layers - 1`` sine layers of ``width``, then a linear read-out.

    5 x 256 is SIREN's own setting and the NeoMLP paper's audio baseline
    (~198 k parameters, about NeoMLP's 182 k audio backbone).
    """

    in_features: int = 1
    out_features: int = 1
    width: int = 256
    layers: int = 5
    w0: float = 30.0  # sin(w0 * (W x + b)) in every sine layer, as in the paper's code

    def to_dict(self) -> dict:
        return asdict(self)


class Siren(nn.Module):
    """SIREN (Sitzmann et al., NeurIPS 2020): an MLP with sine activations.

    The initialisation is what makes it train: the first layer's weights are
    U(-1/in, 1/in), so ``w0 * W x`` spans several periods over the input range
    (w0 = 30 on audio time +-100 is SIREN's own audio setting: w0 3,000 on
    [-1, 1]); every later layer's are U(-sqrt(6/n)/w0, sqrt(6/n)/w0), which
    keeps each sine layer's pre-activations standard normal-ish whatever the
    depth. The read-out is initialised like a hidden layer, as in the paper's
    code. Biases keep PyTorch's default, as there too.
    """

    def __init__(self, config: SirenConfig = SirenConfig()):
        super().__init__()
        c = self.config = config
        if c.layers < 2:
            raise ValueError("a SIREN needs at least 2 layers (one sine layer and the read-out)")
        dims = [c.in_features] + [c.width] * (c.layers - 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))
        self.out = nn.Linear(c.width, c.out_features)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        c = self.config
        self.hidden[0].weight.uniform_(-1 / c.in_features, 1 / c.in_features)
        for layer in [*self.hidden[1:], self.out]:
            bound = math.sqrt(6 / layer.in_features) / c.w0
            layer.weight.uniform_(-bound, bound)

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.config.w0 * z)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Field coordinates ``(B, I)`` -> field values ``(B, O)``."""
        x = coords.float()
        for layer in self.hidden:
            x = self.activation(layer(x))
        return self.out(x)

    def num_parameters(self) -> dict[str, int]:
        return _count(self)


# ------------------------------------------------------------------ SPDER ----
class Spder(Siren):
    """SPDER (Shah & Sitawarin, 2023): SIREN's network with a damped sine, ``sin(w0 z) * sqrt(|z|)``.

    The sine lets the network learn its own positional encoding; the sublinear
    factor passes on the pre-activation's magnitude, which a bare sine folds
    into [-1, 1]. Same sizes and initialisation as :class:`Siren` (the
    authors' setting), so the two differ only in the activation. The small
    constant keeps the square root's gradient finite at exactly zero.
    """

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.config.w0 * z) * torch.sqrt(z.abs() + 1e-12)


# ---------------------------------------------------------------- RFF-MLP ----
@dataclass(frozen=True)
class RFFNetConfig:
    """Gaussian Fourier features of all inputs together, then a ReLU MLP.

    ``rff_dim`` counts cos + sin features (as in NeoMLPConfig); ``layers`` counts
    linear layers, the read-out included. The defaults (256 features, 4 x 256)
    hold ~198 k parameters, the same as SIREN 5 x 256.
    """

    in_features: int = 1
    out_features: int = 1
    width: int = 256
    layers: int = 4
    rff_dim: int = 256
    rff_sigma: float | tuple[float, ...] = 10.0  # std of the frequencies, cycles per field unit; or one per input
    seed: int = 0  # regenerates the frequency bank

    def to_dict(self) -> dict:
        return asdict(self)


class RFFNet(nn.Module):
    """RFF-MLP (Tancik et al., NeurIPS 2020): ``[cos 2 pi B x, sin 2 pi B x]`` -> ReLU MLP.

    A ReLU MLP on raw coordinates is spectrally biased towards low
    frequencies and cannot fit a picture or a sound in any budget; mapping the
    coordinates through random Fourier features first lets it. Unlike NeoMLP,
    which gives each input its own bank and its own token, each frequency here
    is a vector over all inputs (the dense Gaussian ``B`` of the paper), so
    the features see x, y and t together. The bank comes from
    :func:`rff_frequencies` (per-input sigma allowed: an axis's std scales its
    row of ``B``) and is a non-persistent buffer, regenerated from the seed.
    """

    def __init__(self, config: RFFNetConfig = RFFNetConfig()):
        super().__init__()
        c = self.config = config
        if c.rff_dim % 2:
            raise ValueError("rff_dim must be even (cos and sin halves)")
        if c.layers < 1:
            raise ValueError("an RFFNet needs at least 1 layer (the read-out)")
        self.register_buffer("freqs", rff_frequencies(c.in_features, c.rff_dim, c.rff_sigma, c.seed).float(),
                             persistent=False)  # (I, rff_dim // 2)
        dims = [c.rff_dim] + [c.width] * (c.layers - 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))
        self.out = nn.Linear(dims[-1], c.out_features)

    def features(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, I)`` coordinates -> ``(B, rff_dim)`` Fourier features.

        The phases are a matmul, which autocast would run in bfloat16: with 8
        mantissa bits, audio time (+-100 units) times a frequency of 50 lands
        hundreds of radians off, and the features become noise. So they are
        computed in float32 whatever the precision of the rest.
        """
        with torch.autocast(coords.device.type, enabled=False):
            phase = (2 * math.pi) * (coords.float() @ self.freqs)
        return torch.cat([phase.cos(), phase.sin()], dim=-1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Field coordinates ``(B, I)`` -> field values ``(B, O)``."""
        x = self.features(coords)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)

    def num_parameters(self) -> dict[str, int]:
        return _count(self)

