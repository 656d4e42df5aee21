"""The learned context (format v7): an integer MLP over a node's decoded neighbours picks the table it is coded
under; the decoder finds the same tables on every machine, and a context trained on a grid codes it in fewer
bits than the fixed median rule where the grid follows another rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neofield import entropy, learned_context as lc, wavefront


def _gradient_grid(shape: tuple[int, ...], levels: int, seed: int = 0) -> np.ndarray:
    """A grid whose every node is its left plus its upper neighbour less their corner, plus a little noise: a
    plane the median of three neighbours predicts badly and a context that learns the rule predicts well."""
    rng = np.random.default_rng(seed)
    t, y, x = shape
    ramp = (np.arange(y)[:, None] * rng.integers(-1, 2) + np.arange(x)[None, :] * rng.integers(-1, 2)) * 0.5
    field = ramp[None] + rng.normal(0, 2, (t, 1, 1)) + rng.laplace(0, 0.6, shape)
    middle = (levels - 1) // 2
    return np.clip(np.rint(field - field.mean() + middle), 0, levels - 1).astype(np.int32).ravel()


def test_every_neighbour_of_a_node_lies_on_an_earlier_plane():
    shape = (3, 5, 7)
    order, _, _ = wavefront.layout(shape)
    near = lc.neighbours(shape)
    plane = np.indices(shape).reshape(3, -1).sum(0)
    size = math.prod(shape)
    for i, node in enumerate(order):
        present = near[i][near[i] < size]
        assert (plane[present] < plane[node]).all()
    assert (near < size).sum() > 0.5 * near.size  # most neighbours lie inside the grid


def test_the_integer_mlp_is_exact_at_its_bounds():
    """The largest weights and inputs: int64 gives what unbounded integers give (no product wraps)."""
    layers = [np.full(s, 32767, np.int64) for s in lc.SHAPES]
    x = np.full((3, lc.INPUTS), lc.CLIP, np.int64)
    exact = [np.array(w, dtype=object) for w in layers]
    h = np.maximum(x.astype(object) @ exact[0] + exact[1], 0)
    h = h + np.maximum(((h @ exact[2]) >> 8) + exact[3], 0)
    out = ((h @ exact[4]) >> 8) + exact[5]
    assert np.array_equal(lc.forward(layers, x), out.astype(np.int64))
    assert int(np.abs(out).max()) < 2 ** 62


def test_the_integer_mlp_follows_the_float_one_it_was_rounded_from():
    rng = np.random.default_rng(1)
    floats = [rng.normal(0, 0.3, s) for s in lc.SHAPES]
    layers = lc.unpack(np.concatenate([np.rint(f * lc.ONE).ravel() for f in floats]).astype(np.int16))
    x = rng.integers(-5, 6, (200, lc.INPUTS))
    h = np.maximum(x @ floats[0] + floats[1], 0)
    h = h + np.maximum(h @ floats[2] + floats[3], 0)
    expected = (h @ floats[4] + floats[5]) * lc.ONE
    assert np.abs(lc.forward(layers, x) - expected).max() < 0.02 * np.abs(expected).max() + 8


def test_the_scale_tables_are_the_formula_rounded_once():
    for b, decay in enumerate(lc.DECAYS):
        assert decay == min(65535, max(1, round(65536 * math.exp(-0.25 / math.exp(-3.75 + 0.5 * b)))))
    assert lc.LOG_SCALE_EDGES == tuple(round(256 * (-4 + 0.5 * i)) for i in range(1, lc.SCALES))


def test_a_class_table_peaks_at_its_centre_quarter():
    tables = entropy.learned_models(9)  # residuals -8 .. 8 at 0 .. 16
    for quarter in range(lc.QUARTERS):
        table = tables[quarter + lc.QUARTERS * 8].frequencies()
        assert table.sum() == 1 << entropy.PRECISION and table.min() >= 1
        assert int(np.argmax(table)) == 8 + (quarter > 2)  # the centre's nearest whole symbol (a tie: the lower)


def test_a_wrong_count_of_weights_is_refused():
    with pytest.raises(ValueError, match=f"has {lc.WEIGHTS} weights, not 5"):
        lc.unpack(np.zeros(5, np.int16))


def test_a_trained_context_codes_its_grid_in_fewer_bits_than_the_median_rule_and_back_exactly(monkeypatch):
    monkeypatch.setattr(lc, "TRAIN_STEPS", 300)
    shape, levels = (4, 24, 40), 41
    symbols = _gradient_grid(shape, levels)
    layers = lc.unpack(lc.train([(symbols, shape)], levels))
    median = entropy.fit_block(symbols, shape, levels, codings=(entropy.WAVEFRONT,))
    learned = entropy.fit_block(symbols, shape, levels, context=layers)
    assert learned[0] == entropy.LEARNED and learned[1] == []
    bits = [sum(m.bits(r) for r, m in runs) for _, _, runs in (median, learned)]
    assert bits[1] < 0.9 * bits[0]
    other = np.arange(40, dtype=np.int32) % 3
    gaussian = entropy.GaussianModel.fit(other, 3)
    runs = learned[2]
    reader = entropy.Reader(entropy.encode([r for r, _ in runs] + [other], [m for _, m in runs] + [gaussian]))
    assert np.array_equal(entropy.read_block(reader, entropy.LEARNED, [], shape, levels, layers), symbols)
    assert np.array_equal(reader.read(gaussian, other.size), other)


def test_a_block_read_under_a_learned_context_needs_one():
    with pytest.raises(ValueError, match="not coded under a learned context"):
        entropy.read_block(entropy.Reader(b""), entropy.LEARNED, [], (2, 3), 5, None)
    with pytest.raises(ValueError, match="not coded under a learned context"):  # a line is never coded so
        entropy.read_block(entropy.Reader(b""), entropy.LEARNED, [], (30,), 5, lc.unpack(np.zeros(lc.WEIGHTS)))


def test_a_stream_whose_centres_leave_the_levels_is_refused():
    class Largest:  # a damaged stream: every residual at the top of its alphabet
        def read(self, model, n):
            return np.full(n, model.levels - 1, np.int32)

    with pytest.raises(ValueError, match="outside their levels"):
        entropy.read_block(Largest(), entropy.LEARNED, [], (2, 2), 3, lc.unpack(np.zeros(lc.WEIGHTS)))


def test_any_weights_over_any_stream_decode_to_symbols_or_one_clear_error():
    """A hostile bundle's context: extreme or random int16 weights over random words read as symbols in their
    levels, or say the symbols left them; never anything else."""
    rng = np.random.default_rng(3)
    for trial in range(6):
        weights = rng.integers(-32768, 32768, lc.WEIGHTS) if trial % 2 else np.full(lc.WEIGHTS, (-1) ** trial * 32767)
        words = rng.integers(0, 2 ** 32, 64, dtype=np.uint64).astype("<u4").tobytes()
        try:
            out = entropy.read_block(entropy.Reader(words), entropy.LEARNED, [], (3, 5, 6), 9,
                                     lc.unpack(weights.astype(np.int16)))
        except ValueError as e:
            assert "outside their levels" in str(e)
        else:
            assert out.shape == (90,) and out.min() >= 0 and out.max() < 9
