"""Uniform quantization of a field's tensors: the first layer of the bitstream.

The layers of a compressed bundle, each with one job (issue 10): field ->
**quantizer** -> entropy coder -> container. This module turns a float tensor
into integer symbols plus the scale and offset that map them back, per tensor
or per channel, at any bit depth from 1 to 16. Depths may be fractional: a
depth of ``b`` bits means ``round(2**b)`` levels, which the entropy coder
turns into a rate that varies smoothly with ``b`` (what rate control needs).
It knows nothing of files or coders; ``benchmarks/quantize.py`` measures what
each depth costs in PSNR and what its symbols would cost in bytes.

Symbols are ``round((x - offset) / scale)`` in ``[0, levels - 1]``, with
``offset`` the minimum and ``scale = (max - min) / (levels - 1)`` of the
tensor or of each channel, so every value comes back within ``scale / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import NeofieldError

if TYPE_CHECKING:  # torch is only needed by fake_quantize; the CLI imports this module before torch
    import torch

MIN_BITS, MAX_BITS = 1, 16


def levels_for(bits: float) -> int:
    """The number of levels of a (possibly fractional) bit depth."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in [{MIN_BITS}, {MAX_BITS}], not {bits}")
    return max(2, min(1 << MAX_BITS, round(2.0 ** bits)))


@dataclass(frozen=True)
class BitDepths:
    """A bit depth for the backbone's tensors and one for the latents: the two
    groups behave differently (``benchmarks/quantize.py``), so rate control sets
    them apart. 6 and 6 with quantization-aware finetuning cost the demo clip
    nothing measurable at a third of its float16 size (docs/format.md)."""

    backbone: float = 6.0
    latents: float = 6.0

    def __post_init__(self) -> None:
        for value in (self.backbone, self.latents):
            levels_for(value)  # range check

    def for_group(self, group: str) -> float:
        return self.latents if group == "latents" else self.backbone

    def to_dict(self) -> dict:
        return {"backbone": self.backbone, "latents": self.latents}


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer symbols and the affine map back to values."""

    symbols: np.ndarray  # int32, the tensor's shape, each in [0, levels)
    scale: np.ndarray  # float32: shape () per tensor, or the channel count along ``axis``
    offset: np.ndarray  # float32, same shape as ``scale``: the value of symbol 0
    levels: int
    axis: int | None = None  # the channel axis of scale/offset; None: one pair for the tensor
    # blocks of the symbols, seen as (rows, channels), that the entropy coder models each on its own:
    # (first row, end row, channel); None: the tensor is one block (a pyramid's levels are blocks)
    blocks: tuple[tuple[int, int, int], ...] | None = None
    # each block's grid (its level's nodes per axis, t first): where a node's neighbours lie, for coding in context
    block_shapes: tuple[tuple[int, ...], ...] | None = None

    @property
    def bits(self) -> float:
        return math.log2(self.levels)

    def dequantize(self) -> np.ndarray:
        """The values any decoder reconstructs: ``offset + scale * symbol`` in float32."""
        shape = [1] * self.symbols.ndim
        if self.axis is not None:
            shape[self.axis] = -1
        scale, offset = self.scale.reshape(shape), self.offset.reshape(shape)
        return (offset + scale * self.symbols.astype(np.float32)).astype(np.float32)


def quantize(values: np.ndarray, bits: float, axis: int | None = None) -> QuantizedTensor:
    """Quantize ``values`` uniformly to ``bits`` bits, per tensor or per slice along ``axis``.

    Per channel (``axis`` = the output dimension of a weight matrix) pays a
    scale and offset per row and fits rows of different ranges better.
    """
    levels = levels_for(bits)
    x = np.asarray(values, dtype=np.float32)
    if axis is None:
        lo, hi = np.asarray(x.min() if x.size else 0.0), np.asarray(x.max() if x.size else 0.0)
        keep = {}
    else:
        others = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        lo, hi = x.min(axis=others), x.max(axis=others)
        keep = {"axis": axis % x.ndim}
    scale = ((hi - lo) / (levels - 1)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)  # a constant slice: symbol 0 is exact
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis % x.ndim] = -1
    symbols = np.clip(np.rint((x - lo.reshape(shape)) / scale.reshape(shape)), 0, levels - 1).astype(np.int32)
    return QuantizedTensor(symbols, scale, lo.astype(np.float32), levels, keep.get("axis"))


def quantize_step(values: np.ndarray, step: float) -> QuantizedTensor:
    """Quantize ``values`` to multiples of ``step``, symbols centred on 0: what a fit with a rate term trained
    its latents for (:mod:`neofield.latent_rate`). The levels are as many as the largest magnitude needs (at
    least 3, at most 65,535)."""
    x = np.asarray(values, dtype=np.float32)
    k = np.rint(x / np.float32(step)).astype(np.int64) if x.size else np.zeros(0, np.int64)
    half = min(max(int(np.abs(k).max()) if k.size else 0, 1), ((1 << MAX_BITS) - 2) // 2)
    symbols = (np.clip(k, -half, half) + half).astype(np.int32)
    return QuantizedTensor(symbols, np.float32(step), np.float32(-half * np.float32(step)), 2 * half + 1)


def fake_quantize(t: torch.Tensor, levels: int) -> torch.Tensor:
    """What :func:`quantize` per tensor would give back, computed in torch (for
    quantization-aware finetuning: the loss is taken at these values)."""
    import torch

    lo, hi = t.min(), t.max()
    scale = ((hi - lo) / (levels - 1)).clamp_min(torch.finfo(t.dtype).tiny)
    return lo + scale * torch.round((t - lo) / scale).clamp(0, levels - 1)


def entropy_bytes(symbols: np.ndarray) -> float:
    """Order-0 empirical entropy of ``symbols``, in bytes: what an ideal coder with a
    per-tensor histogram would need for them (the histogram itself not counted)."""
    if symbols.size == 0:
        return 0.0
    counts = np.bincount(symbols.ravel().astype(np.int64))
    p = counts[counts > 0] / symbols.size
    return float(-(p * np.log2(p)).sum() * symbols.size / 8)


QUANTIZED = "quantized"  # range-coded symbols; the other ways a bundle stores weights are float dtypes
FLOAT_DTYPES = ("float16", "bfloat16", "float32")
STORAGE_DTYPES = (QUANTIZED, *FLOAT_DTYPES)


def storage_bits(weights_dtype: str, bits: BitDepths | None) -> BitDepths | None:
    """Check how weights are to be stored (``--dtype``, ``--bits``): the bit depths of a quantized bundle (the
    default depths unless given), None for a float one."""
    if weights_dtype not in STORAGE_DTYPES:
        raise NeofieldError(f"--dtype must be one of {', '.join(STORAGE_DTYPES)}, not {weights_dtype!r}")
    if weights_dtype != QUANTIZED:
        if bits is not None:
            raise NeofieldError(f"--bits apply to --dtype {QUANTIZED}, not {weights_dtype}")
        return None
    return bits or BitDepths()
