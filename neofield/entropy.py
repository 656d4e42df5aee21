"""Entropy coding of quantized symbols: the second layer of the bitstream.

field -> quantizer (:mod:`neofield.quantize`) -> **entropy coder** -> container
(:mod:`neofield.bundle`). Each tensor's symbols are range coded with
`constriction <https://bamler-lab.github.io/constriction/>`_ under a quantized
Gaussian model whose mean and standard deviation (float32, 8 bytes) are the
tensor's only side information; a pyramid's latents, level by level and
channel by channel, under a discrete Laplace (:class:`LaplaceModel`) whose
integer table every machine builds alike, or where it pays in context: half
the level first, the other half under models chosen by its decoded
neighbours; plane by plane from their predictions; or plane by plane under a
learned context's fixed tables (:func:`fit_block`).

Why this model (measured on the demo bundle's 8-bit symbols, 33,217 of them,
``benchmarks/quantize.py`` and docs/format.md): their order-0 empirical entropy
is 28,826 bytes before any table is stored; a per-tensor quantized Gaussian
costs 29,321 (+1.7 %), a logistic 29,443, a Laplace 29,728; storing a
histogram per tensor costs more than the gap, and zstd-19 on the packed bytes
gives 30,078 (+4.3 %). The range coder itself lands within a few bytes of
the model's cross-entropy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from . import learned_context, wavefront
from .checkerboard import CLASSES, anchors, context_classes

MIN_STD = 0.05  # a constant tensor still gets a valid (very peaked) model
WORD = np.dtype("<u4")  # constriction emits 32-bit words; stored little-endian
PRECISION = 24  # bits of the Laplace models' integer frequency tables (constriction's queue coder's own)
DECAY_ONE = 1 << 16  # a Laplace model's decay is stored in 1/65,536ths
MAX_TABLE_ENTRIES = 1 << 22  # symbols of all a stream's Laplace tables together (~64 MB while decoding)


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


@functools.lru_cache(maxsize=1)
def _decays() -> np.ndarray:
    """The decays :meth:`LaplaceModel.fit` tries: ``1 - r`` spaced evenly in log from 1/65,536 to 0.98 (spread
    blocks), and below that ``r`` itself, evenly in log from 1/65,536 up (blocks nearly all at the centre). Without
    the second half the most peaked model had ``r`` = 0.02, 0.06 bits a node at the centre: a fine level fitted
    all to 0 cost 912 bytes for its 126 k nodes, and such blocks were 28 % of the latent stream of a 7 KB bundle
    of 2 s of bikes (docs/rate-term.md)."""
    one_minus = np.geomspace(1.0 / DECAY_ONE, 0.98, 96)
    peaked = np.geomspace(1.0 / DECAY_ONE, 0.25, 40)
    out = np.unique(np.clip(np.rint(np.concatenate([1 - one_minus, peaked]) * DECAY_ONE), 1,
                            DECAY_ONE - 1).astype(np.int64))
    out.flags.writeable = False
    return out


def geometric_frequencies(distance: np.ndarray, decay: int) -> np.ndarray:
    """An integer frequency table (int64, each at least 1, summing to ``2**PRECISION``) with weights
    ``(decay / 65536) ** distance``, one per symbol, computed by integer arithmetic alone: every machine builds
    the very same table, which a decoder needs to read the stream the encoder wrote."""
    # weights r**d in 32-bit fixed point by binary powering, each product floored: unsigned 64-bit integer
    # arithmetic only (no product reaches 2**64), so exact and the same everywhere
    span = int(distance.max()) + 1
    d = np.arange(span, dtype=np.uint64)
    w = np.full(span, 1 << 32, dtype=np.uint64)
    base = np.uint64(decay << 16)
    for bit in range(span.bit_length()):
        odd = (d >> np.uint64(bit)) & np.uint64(1) == 1
        w[odd] = (w[odd] * base) >> np.uint64(32)
        base = (base * base) >> np.uint64(32)
    weight = w.astype(np.int64)[distance]
    # every symbol gets at least 1, the rest shared in proportion (floor), the remainder to the nearest; no
    # product passes 2**56
    spare = (1 << PRECISION) - len(distance)
    freq = 1 + (weight * spare) // int(weight.sum())
    freq[int(np.argmin(distance))] += (1 << PRECISION) - int(freq.sum())
    return freq


class IntegerTable:
    """What a model with an integer frequency table (``_table``, int64 over ``0 .. levels - 1``, summing to
    ``2**PRECISION``) gives the coder: its ideal costs and its constriction model."""

    _table: np.ndarray
    levels: int

    def frequencies(self) -> np.ndarray:
        """The integer frequency table, int64, each at least 1, summing to ``2**PRECISION``."""
        return self._table.copy()

    def bits_of(self, counts: np.ndarray) -> float:
        """Ideal cost, in bits, of symbols with these ``counts`` per symbol."""
        return float(-(counts * (np.log2(self._table) - PRECISION)).sum())

    def bits(self, symbols: np.ndarray) -> float:
        """Ideal cost of ``symbols`` under this model (the coder's target), in bits."""
        return self.bits_of(np.bincount(np.asarray(symbols).ravel().astype(np.int64), minlength=self.levels))

    def constriction(self):
        return self._coder_model

    @cached_property
    def _coder_model(self):
        import constriction

        # the integer table, as exact float64 values; constriction rescales it to its own fixed point with
        # IEEE-754 basic arithmetic only (no library functions), which is the same on every machine. Kept: a block
        # coded plane by plane codes hundreds of runs under each of its models
        return constriction.stream.model.Categorical(self._table.astype(np.float64), perfect=False)


class TableModel(IntegerTable):
    """A fixed integer frequency table (:func:`geometric_frequencies`); what the learned context's classes code
    under (:func:`learned_models`)."""

    def __init__(self, table: np.ndarray) -> None:
        self._table = table
        self.levels = len(table)


@functools.lru_cache(maxsize=8)
def learned_models(levels: int) -> tuple[TableModel, ...]:
    """The learned context's tables for symbols ``0 .. levels - 1`` (:mod:`neofield.learned_context`), one per
    class ``quarter + 4 x scale``: over the residual ``j = symbol - base`` (alphabet ``2 levels - 1``), a discrete
    Laplace about ``j = quarter / 4`` with the scale step's decay per quarter symbol."""
    quarters = learned_context.QUARTERS * np.arange(-(levels - 1), levels, dtype=np.int64)
    return tuple(TableModel(geometric_frequencies(np.abs(quarters - f), decay))
                 for decay in learned_context.DECAYS for f in range(learned_context.QUARTERS))


@dataclass(frozen=True)
class LaplaceModel(IntegerTable):
    """A discrete Laplace over the symbols ``0 .. levels - 1``: ``p(k)`` proportional to ``r ** |k - centre|``,
    with ``r = decay / 65536``. Both parameters are integers, and so is its frequency table
    (:meth:`frequencies`), computed by integer arithmetic alone: every machine builds the very same table,
    which a decoder needs to read the stream the encoder wrote.

    Its use is the latents of a pyramid, one model per level and channel (``neofield.bundle``): fitted with
    a rate term their symbols are mostly 0 with long tails, which one Gaussian per tensor fits badly.
    """

    centre: int
    decay: int
    levels: int

    def __post_init__(self) -> None:
        if not (2 <= self.levels <= 1 << 16 and 0 <= self.centre < self.levels and 1 <= self.decay < DECAY_ONE):
            raise ValueError(f"invalid Laplace model {self}")

    @cached_property
    def _table(self) -> np.ndarray:
        return geometric_frequencies(np.abs(np.arange(self.levels, dtype=np.int64) - self.centre), self.decay)

    @classmethod
    def fit(cls, symbols: np.ndarray, levels: int) -> LaplaceModel:
        """The centre at the median symbol and, of 96 decays, the one that codes ``symbols`` in the fewest bits
        (searched around the maximum-likelihood estimate: what counts is the stream's size)."""
        s = np.asarray(symbols, dtype=np.int64).ravel()
        centre = int(np.median(s)) if s.size else 0
        if not s.size:
            return cls(centre, DECAY_ONE // 2, int(levels))
        counts = np.bincount(s, minlength=levels)
        # the maximum-likelihood r of a two-sided geometric, from the mean distance m: 2r / (1 - r**2) = m; then
        # the nearest of the grid's decays and their neighbours, by what they would cost
        m = float(np.abs(s - centre).mean())
        r = (np.sqrt(1 + m * m) - 1) / m if m > 0 else 0.0
        grid = _decays()
        at = int(np.searchsorted(grid, r * DECAY_ONE))
        nearby = grid[max(at - 3, 0):at + 3]
        best = min(nearby, key=lambda d: cls(centre, int(d), int(levels)).bits_of(counts))
        return cls(centre, int(best), int(levels))


def encode(symbols: list[np.ndarray], models: list[GaussianModel | LaplaceModel]) -> bytes:
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


class Reader:
    """A range coded stream read a segment at a time, so that what is read next may depend on what was read
    (a level's second half takes its models' choice from the first: :func:`read_block`)."""

    def __init__(self, data: bytes) -> None:
        import constriction

        if len(data) % WORD.itemsize:
            raise ValueError("the coded stream is not a whole number of 32-bit words")
        self._decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype=WORD).astype(np.uint32))

    def read(self, model: GaussianModel | LaplaceModel, n: int) -> np.ndarray:
        """The next ``n`` symbols, coded under ``model``, as int32."""
        if not n:
            return np.zeros(0, np.int32)
        return np.asarray(self._decoder.decode(model.constriction(), n), dtype=np.int32)


def decode(data: bytes, models: list[GaussianModel | LaplaceModel], sizes: list[int]) -> list[np.ndarray]:
    """The inverse of :func:`encode`: flat int32 symbol arrays of the given sizes."""
    reader = Reader(data)
    return [reader.read(model, n) for model, n in zip(models, sizes, strict=True)]


# How a block of a grid is coded (a group's ``contexts`` flags): whole, under one model; as a checkerboard (format
# v5 on): the anchors under the block's first model, then each other node under the model of its class
# (:mod:`neofield.checkerboard`); plane by plane (v6 on): each node's distance from its prediction under the
# model of its class (:mod:`neofield.wavefront`), in an alphabet of 2 L - 1 symbols; or plane by plane under the
# group's learned context (v7 on): each node's distance from its centre under a fixed table the context's MLP
# picks (:mod:`neofield.learned_context`), no model stored
WHOLE, CHECKERBOARD, WAVEFRONT, LEARNED = 0, 1, 2, 3
CODINGS = (WHOLE, CHECKERBOARD, WAVEFRONT, LEARNED)
CONTEXT_MODELS = 1 + CLASSES  # the checkerboard's: the anchors', then one per class
MODELS = {WHOLE: 1, CHECKERBOARD: CONTEXT_MODELS, WAVEFRONT: wavefront.CLASSES, LEARNED: 0}  # stored models
MODEL_SIDE_BITS = 32  # what a stored model costs (two int32 under zstd, about), in the choice of a coding


def alphabet(coding: int, levels: int) -> int:
    """The symbols a block's models range over: residuals from a prediction take ``2 levels - 1``."""
    return 2 * levels - 1 if coding in (WAVEFRONT, LEARNED) else levels


def block_segments(symbols: np.ndarray, shape: tuple[int, ...], centre: int) -> list[np.ndarray]:
    """A block's symbols (flat, C order over ``shape``) in the order they are coded as a checkerboard: the
    anchors, then the other nodes class by class, each in C order."""
    mask = anchors(shape)
    first, second = symbols[mask], symbols[~mask]
    classes = context_classes(first, shape, centre)
    return [first] + [second[classes == k] for k in range(CLASSES)]


def _fit_all(segments: list[np.ndarray], levels: int, fallback: LaplaceModel | None = None) -> list[LaplaceModel]:
    """A Laplace fitted to each segment; an empty one gets ``fallback``'s centre (or the middle) and any decay."""
    centre = fallback.centre if fallback is not None else (levels - 1) // 2
    return [LaplaceModel.fit(s, levels) if s.size else LaplaceModel(centre, DECAY_ONE // 2, levels) for s in segments]


class BlockCode(NamedTuple):
    """How a block is coded: its ideal bits (its models' storage counted), the coding, its models (as stored)
    and its symbols in coding order, cut into runs each with its model."""

    bits: float
    coding: int
    models: list[LaplaceModel]
    runs: list[tuple[np.ndarray, LaplaceModel | TableModel]]


def fit_block(symbols: np.ndarray, shape: tuple[int, ...] | None, levels: int, codings: tuple[int, ...] = CODINGS,
              context: list[np.ndarray] | None = None
              ) -> tuple[int, list[LaplaceModel], list[tuple[np.ndarray, LaplaceModel | TableModel]]]:
    """How to code a block, whichever of ``codings`` takes the fewest bits, its models' storage counted: the
    coding, its models (as stored) and its symbols in coding order, cut into runs each with its model.
    ``shape``: the block's grid; None where it is not known, and the block is coded whole. ``context``: the
    group's learned context's layers (:func:`learned_context.unpack`), where it has one."""
    return best_block(symbols, shape, levels, codings, context)[1:]


def best_block(symbols: np.ndarray, shape: tuple[int, ...] | None, levels: int, codings: tuple[int, ...] = CODINGS,
               context: list[np.ndarray] | None = None) -> BlockCode:
    """:func:`fit_block`, with the chosen coding's bits."""
    symbols = np.asarray(symbols).ravel()
    whole = LaplaceModel.fit(symbols, levels)
    best = BlockCode(whole.bits(symbols), WHOLE, [whole], [(symbols, whole)])
    if shape is None or symbols.size < 2:
        return best
    anchor = LaplaceModel.fit(symbols[anchors(shape)], levels)
    segments = block_segments(symbols, shape, anchor.centre)
    models = [anchor] + _fit_all(segments[1:], levels, anchor)
    bits = sum(m.bits(s) for m, s in zip(models, segments)) + MODEL_SIDE_BITS * (len(models) - 1)
    if CHECKERBOARD in codings and bits < best.bits:
        best = BlockCode(bits, CHECKERBOARD, models, list(zip(segments, models)))
    size = alphabet(WAVEFRONT, levels)
    if WAVEFRONT in codings and wavefront.allowed(shape) and size <= 1 << 16:
        residual, classes = wavefront.residuals(symbols, shape, levels)
        by_class = [residual[classes == k] for k in range(wavefront.CLASSES)]
        models = _fit_all(by_class, size)
        bits = sum(m.bits(r) for m, r in zip(models, by_class)) + MODEL_SIDE_BITS * (len(models) - 1)
        if bits < best.bits:
            runs = [(r, models[k]) for k, r in wavefront.segments(residual, classes, shape)]
            best = BlockCode(bits, WAVEFRONT, models, runs)
    learned = learned_block(symbols, shape, levels, context) if LEARNED in codings else None
    return learned if learned is not None and learned.bits < best.bits else best


def learned_block(symbols: np.ndarray, shape: tuple[int, ...] | None, levels: int,
                  context: list[np.ndarray] | None) -> BlockCode | None:
    """The block coded under a learned context (no models stored), or None where it cannot be: no context,
    no grid, or a grid the context does not code. A coder that has the block's other codings already compares
    this one's bits with theirs (:mod:`neofield.streams`) instead of fitting them again."""
    symbols = np.asarray(symbols).ravel()
    if context is None or shape is None or symbols.size < 2 or not learned_context.allowed(shape, levels):
        return None
    residual, classes = learned_context.residuals(symbols, shape, levels, context)
    tables = learned_models(levels)
    bits = sum(tables[k].bits(residual[classes == k]) for k in np.unique(classes).tolist())
    return BlockCode(bits, LEARNED, [], [(r, tables[k]) for k, r in wavefront.segments(residual, classes, shape)])


def read_block(reader: Reader, coding: int, models: list[LaplaceModel], shape: tuple[int, ...], levels: int,
               context: list[np.ndarray] | None = None) -> np.ndarray:
    """The inverse of coding :func:`fit_block`'s runs: the block's symbols (``0 .. levels - 1``), flat in C order;
    ``context``: the group's learned context, for a block coded under it."""
    size = int(np.prod(shape, dtype=np.int64))
    if coding not in CODINGS or len(models) != MODELS[coding]:
        raise ValueError(f"a block coded {coding} has {MODELS.get(coding)} models, not {len(models)}")
    if coding == LEARNED:
        if context is None or not learned_context.allowed(shape, levels):
            raise ValueError(f"a grid of {shape} nodes at {levels} levels is not coded under a learned context "
                             "(or the bundle has none)")
        tables = learned_models(levels)
        out = learned_context.decode(lambda k, n: reader.read(tables[k], n), shape, levels, context)
        if out.min(initial=0) < 0 or out.max(initial=0) >= levels:
            raise ValueError("symbols predicted outside their levels")
        return out.astype(np.int32)
    if coding == WHOLE:
        return reader.read(models[0], size)
    if coding == WAVEFRONT:
        if not wavefront.allowed(shape):
            raise ValueError(f"a grid of {shape} nodes is not coded plane by plane")
        out = wavefront.decode(lambda k, n: reader.read(models[k], n), shape, levels)
        if out.min(initial=0) < 0 or out.max(initial=0) >= levels:
            raise ValueError("symbols predicted outside their levels")
        return out.astype(np.int32)
    mask = anchors(shape)
    first = reader.read(models[0], int(mask.sum()))
    classes = context_classes(first, shape, models[0].centre)
    second = np.zeros(len(classes), np.int32)
    for k, model in enumerate(models[1:]):
        at = classes == k
        second[at] = reader.read(model, int(at.sum()))
    out = np.empty(size, np.int32)
    out[mask], out[~mask] = first, second
    return out
