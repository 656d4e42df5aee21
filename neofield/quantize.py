"""Uniform quantization of a field's tensors: the first layer of the bitstream.

The layers of a compressed bundle, each with one job (issue 10): field ->
**quantizer** -> entropy coder -> container. This module turns a float tensor
into integer symbols plus the scale and offset that map them back, per tensor
or per channel, at any bit depth from 1 to 16. It knows nothing of files or
coders; ``benchmarks/quantize.py`` measures what each depth costs in PSNR and
what its symbols would cost in bytes (their empirical entropy).

Symbols are ``round((x - offset) / scale)`` in ``[0, 2**bits - 1]``, with
``offset`` the minimum and ``scale = (max - min) / (2**bits - 1)`` of the
tensor or of each channel, so every value comes back within ``scale / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BITS = 16


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer symbols and the affine map back to values."""

    symbols: np.ndarray  # uint16, the tensor's shape, each in [0, 2**bits)
    scale: np.ndarray  # float32: shape () per tensor, or the channel count along ``axis``
    offset: np.ndarray  # float32, same shape as ``scale``: the value of symbol 0
    bits: int
    axis: int | None = None  # the channel axis of scale/offset; None: one pair for the tensor

    def dequantize(self) -> np.ndarray:
        """The values any decoder reconstructs: ``offset + scale * symbol`` in float32."""
        shape = [1] * self.symbols.ndim
        if self.axis is not None:
            shape[self.axis] = -1
        scale, offset = self.scale.reshape(shape), self.offset.reshape(shape)
        return (offset + scale * self.symbols.astype(np.float32)).astype(np.float32)


def quantize(values: np.ndarray, bits: int, axis: int | None = None) -> QuantizedTensor:
    """Quantize ``values`` uniformly to ``bits`` bits, per tensor or per slice along ``axis``.

    Per channel (``axis`` = the output dimension of a weight matrix) pays a
    scale and offset per row and fits rows of different ranges better.
    """
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in [1, {MAX_BITS}], not {bits}")
    x = np.asarray(values, dtype=np.float32)
    if axis is None:
        lo, hi = np.asarray(x.min() if x.size else 0.0), np.asarray(x.max() if x.size else 0.0)
        keep = {}
    else:
        others = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        lo, hi = x.min(axis=others), x.max(axis=others)
        keep = {"axis": axis % x.ndim}
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)  # a constant slice: symbol 0 is exact
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis % x.ndim] = -1
    symbols = np.clip(np.rint((x - lo.reshape(shape)) / scale.reshape(shape)), 0, levels).astype(np.uint16)
    return QuantizedTensor(symbols, scale, lo.astype(np.float32), bits, keep.get("axis"))


def entropy_bytes(symbols: np.ndarray) -> float:
    """Order-0 empirical entropy of ``symbols``, in bytes: what an ideal coder with a
    per-tensor histogram would need for them (the histogram itself not counted)."""
    if symbols.size == 0:
        return 0.0
    counts = np.bincount(symbols.ravel().astype(np.int64))
    p = counts[counts > 0] / symbols.size
    return float(-(p * np.log2(p)).sum() * symbols.size / 8)
