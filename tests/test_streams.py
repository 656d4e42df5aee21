"""A bundle's coded streams: a group keeps a learned context only where its stream, models and weights come out
smaller with it."""

from __future__ import annotations

import numpy as np

from neofield import entropy, learned_context, streams
from neofield.quantize import QuantizedTensor


def _grid_latents(shape: tuple[int, ...] = (4, 24, 40), levels: int = 41) -> dict[str, QuantizedTensor]:
    """One latent tensor of one block: a grid each node of which is its left plus its upper neighbour less their
    corner, plus noise (the median rule predicts it badly, a context learns it)."""
    rng = np.random.default_rng(0)
    t, y, x = shape
    field = (np.arange(y)[:, None] * 0.5 - np.arange(x)[None, :] * 0.5)[None] + rng.normal(0, 2, (t, 1, 1))
    field = field + rng.laplace(0, 0.6, shape)
    symbols = np.clip(np.rint(field - field.mean() + 20), 0, levels - 1).astype(np.int32).reshape(-1, 1, 1)
    q = QuantizedTensor(symbols, np.float32(0.1), np.float32(-2.0), levels, blocks=((0, len(symbols), 0),),
                        block_shapes=(shape,))
    return {"latents.table": q}


def test_a_group_keeps_a_context_only_where_it_comes_out_smaller(monkeypatch):
    monkeypatch.setattr(learned_context, "TRAIN_STEPS", 300)
    monkeypatch.setattr(learned_context, "MIN_STREAM_BYTES", 100)
    quantized = _grid_latents()
    plain = streams.code_groups(quantized, {})["latents"]
    monkeypatch.setattr(streams, "CONTEXT_SIDE_BYTES", 0)
    kept = streams.code_groups(quantized)["latents"]
    assert kept.contexts == [entropy.LEARNED] and kept.context is not None
    assert len(kept.stream) < len(plain.stream)
    monkeypatch.setattr(streams, "CONTEXT_SIDE_BYTES", len(plain.stream))  # weights that could never pay
    assert streams.code_groups(quantized)["latents"].context is None
