"""Random Fourier features: one fixed frequency bank per scalar input."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def rff_frequencies(in_features: int, rff_dim: int, sigma: float | Sequence[float], seed: int) -> torch.Tensor:
    """Gaussian frequencies ``(in_features, rff_dim // 2)`` with std ``sigma``
    (one value for all inputs, or one per input).

    Drawn with numpy's legacy ``RandomState``, whose stream is frozen across
    numpy releases: a bundle stores only ``(seed, sigma, rff_dim)`` and any
    future neofield regenerates the very same bank, in float64 so that large
    coordinates (audio time reaches +-100) keep their phase.
    """
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (in_features,))
    bank = np.random.RandomState(seed).standard_normal((in_features, rff_dim // 2)) * sigma[:, None]
    return torch.from_numpy(bank)


class RandomFourierFeatures(nn.Module):
    """``x_i -> [cos(2 pi b x_i), sin(2 pi b x_i)]`` for every scalar input ``x_i``.

    Each input gets its own bank, so each becomes its own token. The bank is a
    non-persistent buffer: it is regenerated from the seed, never stored.
    """

    def __init__(self, in_features: int, rff_dim: int, sigma: float | Sequence[float], seed: int):
        super().__init__()
        if rff_dim % 2:
            raise ValueError("rff_dim must be even (cos and sin halves)")
        self.register_buffer("freqs", rff_frequencies(in_features, rff_dim, sigma, seed).float(), persistent=False)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, I)`` coordinates -> ``(B, I, rff_dim)`` features."""
        phase = (2 * math.pi) * coords.float()[..., None] * self.freqs
        return torch.cat([phase.cos(), phase.sin()], dim=-1)
