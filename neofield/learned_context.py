"""A latent grid coded plane by plane under a learned context: a tiny integer MLP over each node's decoded
neighbours gives the Laplace it is coded under (format v7).

The plane-by-plane coding (:mod:`neofield.wavefront`) predicts a node by a fixed rule, the median of three
neighbours, and picks one of six models by how far they spread. Which neighbours matter, and how much a
spread says, differ from clip to clip and level to level: this coding learns it per bundle, as Cool-chic's
autoregressive model does. Ten **earlier neighbours** (every offset whose indices sum below 0, so on a plane
before the node's own, and a decoder still reads a whole plane at once) go through an MLP of two hidden layers
of 16, which says the node's **centre**, in quarters of a symbol, and its **scale**, one of 16 steps of e^0.5
from e^-3.75 to e^3.75. The node is coded as its distance from the centre's whole part under the fixed table of
a discrete Laplace about that centre at that scale: 4 x 16 tables, built from integers alone, nothing fitted or
stored per block. The bundle stores the MLP: 482 weights, int16.

Exactness: the decoder runs the MLP in int64 arithmetic on integer symbols, weights in units of 1/256 (every
product bounded, :func:`forward`), so every machine finds the same centres and scales. The encoder trains the
MLP in float (:func:`train`, any machine: only what it writes is read back), then codes with the integer one.

On the latents of 2 s of bikes fitted for 120 s (docs/rate-term.md) a float prototype of this model coded
them in 14-17 % fewer bits than the median rule, and quarters and 16 scales kept -12.6 % (lambda 0.003); as
built, trained for ~7 s, it saves 8-9 % of that bundle's latent bytes, its weights counted.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import wavefront

OFFSETS = ((0, 0, -1), (0, -1, 0), (-1, 0, 0), (0, -1, -1), (0, 0, -2), (0, -2, 0), (-1, -1, 0), (-1, 0, -1),
           (0, -2, 1), (0, -1, -2))
"""A node's earlier neighbours as (frame, row, column) offsets, each summing below 0: all on earlier planes."""
INPUTS, HIDDEN = len(OFFSETS), 16
SHAPES = ((INPUTS, HIDDEN), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (HIDDEN, 2), (2,))
WEIGHTS = sum(math.prod(s) for s in SHAPES)  # 482
ONE = 256  # weights, biases and outputs in units of 1/256
CLIP = 64  # a neighbour's distance from the middle symbol, clipped to +-CLIP: bounds every product
QUARTERS = 4  # the centre's resolution in a symbol
LOG_SCALE_EDGES = (-896, -768, -640, -512, -384, -256, -128, 0, 128, 256, 384, 512, 640, 768, 896)
"""Where the MLP's log-scale output (in 1/256) passes from one scale step to the next: steps of 0.5 from -3.5."""
SCALES = len(LOG_SCALE_EDGES) + 1
DECAYS = (2, 104, 1313, 6115, 15548, 27386, 38604, 47541, 53941, 58236, 61006, 62750, 63832, 64497, 64904, 65152)
"""Per scale step ``b``, the Laplace's decay over a quarter of a symbol in 1/65,536: ``exp(-0.25 / s)`` at
``s = exp(-3.75 + 0.5 b)``, rounded once and written here, so no machine's ``exp`` decides a table."""
CLASSES = QUARTERS * SCALES
MIN_STREAM_BYTES = 16_000
"""A bundle trains a context only for a group whose stream takes at least this many bytes without one: the 482
weights take ~800 bytes, and the context saved 8-9 % of a 55 KB stream, 2-3 % of a 21 KB one and nothing of a
5 KB one (benchmarks/entropy_models.py on 120 s fits of 2 s of bikes)."""
# the training: ~7 s on a 2-core CPU whatever the bundle; on 353 k latents of a 120 s fit of 2 s of bikes, 600 steps of
# 4,096 nodes saved -4.5 % at lambda 0.003 (the weights counted), 2,000 of 8,192 -8.1 %, 4,000 -8.9 %
TRAIN_NODES, TRAIN_STEPS, TRAIN_BATCH = 1 << 18, 3000, 8192


def allowed(shape: tuple[int, ...], levels: int) -> bool:
    """Whether a grid of ``shape`` (2 or 3 axes) with symbols ``0 .. levels - 1`` may be coded so."""
    return len(shape) in (2, 3) and wavefront.allowed(shape) and 2 <= levels <= 1 << 12


@functools.lru_cache(maxsize=64)
def neighbours(shape: tuple[int, ...]) -> np.ndarray:
    """For each node in the plane-by-plane order (:func:`wavefront.layout`), the flat indices of its
    :data:`OFFSETS` neighbours, or ``size`` where one lies outside the grid. Read-only, kept per shape."""
    order, _, _ = wavefront.layout(shape)
    grid = (1,) * (3 - len(shape)) + tuple(shape)
    index = np.stack(np.unravel_index(order, grid))
    size = int(np.prod(grid, dtype=np.int64))
    near = np.empty((len(order), INPUTS), np.int64)
    for i, offset in enumerate(OFFSETS):
        at = index + np.array(offset)[:, None]
        inside = ((at >= 0) & (at < np.array(grid)[:, None])).all(0)
        near[:, i] = np.where(inside, np.ravel_multi_index(np.where(inside, at, 0), grid), size)
    near.flags.writeable = False
    return near


def unpack(weights: np.ndarray) -> list[np.ndarray]:
    """The MLP's layers (:data:`SHAPES`) from its :data:`WEIGHTS` stored int16 values, as int64."""
    flat = np.asarray(weights).astype(np.int64).ravel()
    if flat.size != WEIGHTS:
        raise ValueError(f"a learned context has {WEIGHTS} weights, not {flat.size}")
    cuts = np.cumsum([math.prod(s) for s in SHAPES])[:-1]
    return [part.reshape(shape) for part, shape in zip(np.split(flat, cuts), SHAPES, strict=True)]


def forward(layers: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The MLP on integer inputs ``(nodes, INPUTS)`` (each within +-CLIP): ``(nodes, 2)`` centres and log-scales in
    1/256, in int64 arithmetic only. Bounds: a first layer's sum within 10 * 64 * 2^15 < 2^25; the second's
    within 16 * 2^25 * 2^15 < 2^44 before its shift (2^36 after); the output's within 16 * 2^37 * 2^15 < 2^56."""
    w1, b1, w2, b2, w3, b3 = layers
    h = np.maximum(x @ w1 + b1, 0)
    h = h + np.maximum(((h @ w2) >> 8) + b2, 0)
    return ((h @ w3) >> 8) + b3


def predict(layers: list[np.ndarray], values: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Each node's base (its centre's whole part, a symbol ``0 .. levels - 1``) and class (quarter + 4 x scale
    step) from its neighbours' symbols ``(nodes, INPUTS)`` (a missing one holds the middle symbol)."""
    middle = (levels - 1) // 2
    out = forward(layers, np.clip(values - middle, -CLIP, CLIP))
    quarters = (np.clip(out[:, 0], -ONE * levels, ONE * levels) + ONE // (2 * QUARTERS)) >> 6  # rounded to 1/4
    base = middle + (quarters >> 2)
    inside = (base >= 0) & (base < levels)
    scale = np.searchsorted(np.asarray(LOG_SCALE_EDGES), out[:, 1], side="right")
    return np.clip(base, 0, levels - 1), np.where(inside, quarters & 3, 0) + QUARTERS * scale


def gathered(symbols: np.ndarray, shape: tuple[int, ...], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """A block's symbols (flat, C order) in plane-by-plane order, and each one's :data:`OFFSETS` neighbours'
    symbols ``(nodes, INPUTS)`` (the middle symbol where one lies outside the grid): what the coder codes, and
    what the MLP reads."""
    order, _, _ = wavefront.layout(shape)
    padded = np.append(np.asarray(symbols, np.int64).ravel(), (levels - 1) // 2)
    return padded[order], padded[neighbours(shape)]


def residuals(symbols: np.ndarray, shape: tuple[int, ...], levels: int, layers: list[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    """A block's symbols (flat, C order) as coded: in plane-by-plane order, each as ``symbol - base + levels - 1``
    (``0 .. 2 levels - 2``), and each one's class."""
    ordered, near = gathered(symbols, shape, levels)
    base, classes = predict(layers, near, levels)
    return ordered - base + levels - 1, classes


def decode(read, shape: tuple[int, ...], levels: int, layers: list[np.ndarray]) -> np.ndarray:
    """The block's symbols, flat in C order, from ``read(k, n)``: the next ``n`` residuals of class ``k``, as
    :func:`wavefront.segments` cut them."""
    return wavefront.decode_planes(read, shape, levels, neighbours(shape), (levels - 1) // 2,
                                   lambda a, b, near: predict(layers, near, levels), CLASSES)


def train(blocks: list[tuple[np.ndarray, tuple[int, ...]]], levels: int, seed: int = 0) -> np.ndarray:
    """The MLP fitted to code ``blocks`` (symbols, grid) in the fewest bits: float, trained on up to
    :data:`TRAIN_NODES` of their nodes under a continuous Laplace's bin masses, then rounded to the stored
    int16 weights. Encoder side only: any weights decode exactly, these are just good ones."""
    import torch

    middle = (levels - 1) // 2
    ys, xs = zip(*(gathered(symbols, shape, levels) for symbols, shape in blocks))
    x, y = np.clip(np.concatenate(xs) - middle, -CLIP, CLIP), np.concatenate(ys) - middle
    rng = np.random.default_rng(seed)
    if len(y) > TRAIN_NODES:
        pick = rng.choice(len(y), TRAIN_NODES, replace=False)
        x, y = x[pick], y[pick]
    g = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    params = [(torch.randn(s, generator=g) * (0.5 / math.sqrt(s[0])) if len(s) == 2 else torch.zeros(s))
              for s in SHAPES]
    params = [p.requires_grad_() for p in params]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    for step in range(TRAIN_STEPS):
        at = torch.randint(len(y), (min(TRAIN_BATCH, len(y)),), generator=g)
        loss = _bits(params, x[at], y[at]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == TRAIN_STEPS * 2 // 3:
            optimizer.param_groups[0]["lr"] = 1e-3
    with torch.no_grad():
        scaled = [p * ONE for p in params]
    return np.concatenate([np.clip(np.rint(p.numpy()), -32767, 32767).ravel() for p in scaled]).astype(np.int16)


def _bits(params, x, y):
    """Bits of each symbol under the float MLP's Laplace (the integer one's outputs are this times 256)."""
    import torch

    w1, b1, w2, b2, w3, b3 = params
    h = torch.relu(x @ w1 + b1)
    h = h + torch.relu(h @ w2 + b2)
    out = h @ w3 + b3
    law = torch.distributions.Laplace(out[:, 0], torch.exp(out[:, 1].clamp(-6, 6)))
    mass = (law.cdf(y + 0.5) - law.cdf(y - 0.5)).clamp_min(2.0 ** -20)
    return -torch.log2(mass)
