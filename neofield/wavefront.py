"""A latent grid coded plane by plane, each node predicted from its decoded neighbours (format v6).

A fitted level of latents is smooth where the signal is: a node is most often its neighbours' value, not 0.
The checkerboard (:mod:`neofield.checkerboard`) knows only how far from 0 a node's neighbours spread; this
coding predicts the node's value itself. Its **earlier neighbours** are the one before it along each axis
(left, above, the frame before); a node's **plane** is the sum of its indices, so all its earlier neighbours
lie on the plane before its own, and a decoder reads a whole plane at once (a wavefront), not a symbol at a
time. Each node is coded as its distance from the **prediction**, the median of its earlier neighbours, under
one of six models, its **class**, chosen by how far those neighbours spread about the prediction and how far
the prediction lies from the middle symbol (where a fitted latent's 0 lies).

On the latents of five 120 s fits of 2 s of bikes (``benchmarks/entropy_models.py``, docs/rate-term.md), the
coder taking whichever of the three codings costs a block least coded them in 4.9 % (lambda 0.3) to 20.5 %
(lambda 0.003) fewer bytes than with the checkerboard alone, decoding in 20-94 ms instead of 12-25 (the
field's render: ~0.7 s). Integer arithmetic on integer symbols only: every decoder finds the same predictions
and classes.
"""

from __future__ import annotations

import functools

import numpy as np

EDGES = (1, 2, 3, 5, 8)
"""A node is in class ``k`` when the spread of its earlier neighbours about the prediction plus the prediction's
distance from the middle symbol reaches ``k`` of these (class 0: neighbours alike, at the middle)."""
CLASSES = 1 + len(EDGES)
MAX_PLANES = 4096
"""A grid is coded so only if it has at least two axes and at most this many planes: a decoder reads a plane
at a time, and a line of nodes would be a plane a node (a reader refuses a bundle that says otherwise)."""


def allowed(shape: tuple[int, ...]) -> bool:
    """Whether a grid of ``shape`` may be coded plane by plane (:data:`MAX_PLANES`)."""
    return len(shape) >= 2 and planes(shape) <= MAX_PLANES


def planes(shape: tuple[int, ...]) -> int:
    return int(sum(n - 1 for n in shape)) + 1


@functools.lru_cache(maxsize=64)
def layout(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid's nodes in coding order: ``order`` (flat C-order indices, plane by plane, each plane in C
    order), ``bounds`` (where each plane starts in ``order``, and the end) and ``earlier``: for each node in
    that order, the flat index of its earlier neighbour along each axis, or ``size`` where it has none (a
    reader keeps a padding slot there). Read-only, kept per shape."""
    index = np.indices(shape).reshape(len(shape), -1)
    plane = index.sum(0)
    order = np.argsort(plane, kind="stable")
    bounds = np.searchsorted(plane[order], np.arange(planes(shape) + 1))
    size = int(np.prod(shape, dtype=np.int64))
    strides = np.array([int(np.prod(shape[a + 1:], dtype=np.int64)) for a in range(len(shape))])
    earlier = np.where(index[:, order] > 0, order[None, :] - strides[:, None], size).T
    for a in (order, bounds, earlier):
        a.flags.writeable = False
    return order, bounds, np.ascontiguousarray(earlier)


def predict(neighbours: np.ndarray, present: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Each node's prediction and class from its earlier neighbours' symbols ``(nodes, axes)`` and which of them
    exist: the median of those present (of an even count, the floor of the two middle ones' mean; of none, the
    middle symbol ``(levels - 1) // 2``), and the class (:data:`EDGES`). Integer arithmetic."""
    middle = (levels - 1) // 2
    count = present.sum(1)
    ordered = np.sort(np.where(present, neighbours, np.int64(1) << 40), axis=1)  # those missing last
    rows = np.arange(len(count))
    low, high = ordered[rows, np.maximum(count - 1, 0) // 2], ordered[rows, count // 2]
    pred = np.where(count > 0, (low + high) // 2, middle)
    spread = np.where(present, np.abs(neighbours - pred[:, None]), 0).sum(1) + np.abs(pred - middle)
    return pred, np.searchsorted(np.asarray(EDGES), spread, side="right")


def residuals(symbols: np.ndarray, shape: tuple[int, ...], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """A block's symbols (flat, C order over ``shape``, ``0 .. levels - 1``) as the coder codes them: in coding
    order (:func:`layout`), each as ``symbol - prediction + levels - 1`` (``0 .. 2 levels - 2``), and each one's
    class."""
    order, _, earlier = layout(shape)
    padded = np.append(np.asarray(symbols, np.int64).ravel(), 0)
    present = earlier < len(padded) - 1
    pred, classes = predict(padded[earlier], present, levels)
    return padded[order] - pred + levels - 1, classes


def segments(residual: np.ndarray, classes: np.ndarray, shape: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
    """The residuals cut as they are coded, with each one's class: plane by plane, in each plane class by class
    (a class with no nodes in a plane is left out; a decoder knows which, from the plane before)."""
    _, bounds, _ = layout(shape)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        r, c = residual[a:b], classes[a:b]
        out += [(k, r[c == k]) for k in np.unique(c)]
    return out


def decode(read, shape: tuple[int, ...], levels: int) -> np.ndarray:
    """The block's symbols, flat in C order, from ``read(k, n)``: the next ``n`` residuals of class ``k``, as the
    coder wrote them (:func:`segments`)."""
    _, _, earlier = layout(shape)
    present = earlier < len(earlier)
    return decode_planes(read, shape, levels, earlier, 0, lambda a, b, near: predict(near, present[a:b], levels),
                         CLASSES)


def decode_planes(read, shape: tuple[int, ...], levels: int, near: np.ndarray, fill: int, predict_plane,
                  classes: int) -> np.ndarray:
    """Plane by plane, the residuals ``read(k, n)`` gives class by class turned back into symbols: each plane's
    nodes' ``(prediction, class)`` from ``predict_plane(a, b, values)``, ``values`` the symbols at ``near[a:b]``
    (indices of decoded nodes, or the padding slot, which holds ``fill``). The median rule's decoder and the
    learned context's (:mod:`neofield.learned_context`)."""
    order, bounds, _ = layout(shape)
    size = len(order)
    padded = np.full(size + 1, fill, np.int64)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        pred, cls = predict_plane(a, b, padded[near[a:b]])
        value = np.empty(b - a, np.int64)
        for k, n in enumerate(np.bincount(cls, minlength=classes).tolist()):
            if n:
                value[cls == k] = read(k, n)
        padded[order[a:b]] = value + pred - (levels - 1)
    return padded[:size]
