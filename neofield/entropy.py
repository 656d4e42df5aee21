"""Entropy coding of quantized symbols: the second layer of the bitstream.

field -> quantizer (:mod:`neofield.quantize`) -> **entropy coder** -> container
(:mod:`neofield.bundle`). Each tensor's symbols are range coded with
`constriction <https://bamler-lab.github.io/constriction/>`_ under a quantized
Gaussian model whose mean and standard deviation (float32, 8 bytes) are the
tensor's only side information.

Why this model (measured on the demo bundle's 8-bit symbols, 33,217 of them,
``benchmarks/quantize.py`` and docs/format.md): their order-0 empirical entropy
is 28,826 bytes before any table is stored; a per-tensor quantized Gaussian
costs 29,321 (+1.7 %), a logistic 29,443, a Laplace 29,728; storing a
histogram per tensor costs more than the gap, and zstd-19 on the packed bytes
gives 30,078 (+4.3 %). The range coder itself lands within a few bytes of
the model's cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STD = 0.05  # a constant tensor still gets a valid (very peaked) model
WORD = np.dtype("<u4")  # constriction emits 32-bit words; stored little-endian


@dataclass(frozen=True)
class GaussianModel:
    """A Gaussian over the symbols ``0 .. levels - 1``, quantized to bins of width 1."""

    mean: float
    std: float
    levels: int

    @classmethod
    def fit(cls, symbols: np.ndarray, levels: int) -> GaussianModel:
        """Moment-matched to ``symbols``; rounded to float32 first, because the
        decoder only ever sees the stored float32 values."""
        s = np.asarray(symbols, dtype=np.float64).ravel()
        mean = float(np.float32(s.mean() if s.size else 0.0))
        std = float(np.float32(max(s.std() if s.size else 0.0, MIN_STD)))
        return cls(mean, std, int(levels))

    def constriction(self):
        import constriction

        return constriction.stream.model.QuantizedGaussian(0, self.levels - 1, self.mean, self.std)

    def bits(self, symbols: np.ndarray) -> float:
        """Ideal cost of ``symbols`` under this model (the coder's target), in bits."""
        import math

        k = np.arange(self.levels + 1, dtype=np.float64) - 0.5
        cdf = 0.5 * (1 + np.vectorize(math.erf)((k - self.mean) / (self.std * math.sqrt(2))))
        p = np.maximum(np.diff(cdf), 2.0 ** -24)
        counts = np.bincount(np.asarray(symbols).ravel().astype(np.int64), minlength=self.levels)
        return float(-(counts * np.log2(p / p.sum())).sum())


def encode(symbols: list[np.ndarray], models: list[GaussianModel]) -> bytes:
    """Range code several tensors' symbols, in order, into one stream."""
    import constriction

    encoder = constriction.stream.queue.RangeEncoder()
    for s, model in zip(symbols, models, strict=True):
        flat = np.asarray(s).ravel().astype(np.int32)
        if flat.size and (flat.min() < 0 or flat.max() >= model.levels):
            raise ValueError(f"symbols outside 0..{model.levels - 1}")
        if flat.size:
            encoder.encode(flat, model.constriction())
    return encoder.get_compressed().astype(WORD).tobytes()


def decode(data: bytes, models: list[GaussianModel], sizes: list[int]) -> list[np.ndarray]:
    """The inverse of :func:`encode`: flat int32 symbol arrays of the given sizes."""
    import constriction

    if len(data) % WORD.itemsize:
        raise ValueError("the coded stream is not a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype=WORD).astype(np.uint32))
    out = []
    for model, n in zip(models, sizes, strict=True):
        out.append(np.asarray(decoder.decode(model.constriction(), n), dtype=np.int32) if n
                   else np.zeros(0, np.int32))
    return out
