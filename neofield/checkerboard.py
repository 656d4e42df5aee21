"""A latent grid split like a checkerboard, and the class a node's decoded neighbours put it in.

A fitted level of latents is still regions of zeros beside busy ones, so a node's neighbours say much about
how widely it spreads. A context in raster order (each node after its left, upper and earlier neighbours)
would be decoded one symbol at a time; two halves keep whole arrays: the **anchors**, the nodes whose indices
sum to an even number, first, then every other node, whose face neighbours are all anchors, in a **class**
chosen by their mean distance from the centre.

The entropy coder codes a level so (:func:`neofield.entropy.fit_block`), and a fit's rate term prices its
latents so (:func:`neofield.latent_rate.fit_scales`): both take the rule from here. The classes come from
integer symbols by integer arithmetic alone, so every decoder finds the same ones.
"""

from __future__ import annotations

import functools

import numpy as np

EDGES = (1, 3, 7, 15, 30)
"""In tenths: a node coded second is in class ``k`` when its neighbours' mean distance from the centre reaches
``k`` of these (class 0: all its neighbours at the centre). Five edges measured best of the sets tried
(docs/rate-term.md): three, seven or nine moved the bytes by under 0.3 %."""
CLASSES = 1 + len(EDGES)


@functools.lru_cache(maxsize=256)
def anchors(shape: tuple[int, ...]) -> np.ndarray:
    """Flat in C order: True at the nodes coded first, those whose indices sum to an even number. Read-only and
    kept per shape: a fit's rate term asks for the same few levels' every few steps."""
    mask = (np.indices(shape).sum(0) % 2 == 0).ravel()
    mask.flags.writeable = False
    return mask


def context_classes(first: np.ndarray, shape: tuple[int, ...], centre: int) -> np.ndarray:
    """The class (0 .. ``CLASSES - 1``) of each node coded second, in C order, from ``first``: the anchors'
    integer symbols in C order, and ``centre``, the symbol of 0."""
    mask = anchors(shape).reshape(shape)
    distance = np.zeros(shape, np.int64)
    distance[mask] = np.abs(np.asarray(first).astype(np.int64) - centre)
    total, count = np.zeros(shape, np.int64), np.zeros(shape, np.int16)
    for axis, n in enumerate(shape):
        if n < 2:
            continue
        lo = tuple(slice(0, -1) if a == axis else slice(None) for a in range(len(shape)))
        hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(len(shape)))
        total[hi] += distance[lo]
        count[hi] += 1
        total[lo] += distance[hi]
        count[lo] += 1
    total, count = total[~mask], count[~mask]
    return sum((10 * total >= edge * count).astype(np.int64) for edge in EDGES) * (count > 0)
