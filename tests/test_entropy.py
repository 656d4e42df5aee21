"""The range coder: exact round trips, and bytes close to what the model promises."""

import numpy as np
import pytest

from neofield import entropy
from neofield.quantize import entropy_bytes, quantize


def _gaussian_symbols(n: int, bits: int, seed: int = 0) -> tuple[np.ndarray, int]:
    q = quantize(np.random.default_rng(seed).normal(size=n).astype(np.float32), bits)
    return q.symbols, q.levels


def test_symbols_come_back_exactly_in_order():
    tensors = [_gaussian_symbols(n, b, seed) for seed, (n, b) in enumerate([(1000, 6), (37, 3), (0, 8), (500, 12)])]
    models = [entropy.GaussianModel.fit(s, levels) for s, levels in tensors]
    data = entropy.encode([s for s, _ in tensors], models)
    back = entropy.decode(data, models, [s.size for s, _ in tensors])
    for (s, _), b in zip(tensors, back):
        assert np.array_equal(s.ravel(), b)


def test_coded_bytes_are_within_three_percent_of_the_empirical_entropy():
    symbols, levels = _gaussian_symbols(50_000, 6)
    model = entropy.GaussianModel.fit(symbols, levels)
    coded = len(entropy.encode([symbols], [model]))
    assert coded <= 1.03 * entropy_bytes(symbols) + 8
    assert coded >= 0.99 * model.bits(symbols) / 8  # the coder cannot beat its own model


def test_a_constant_tensor_costs_almost_nothing():
    symbols = np.zeros(10_000, np.int32)
    model = entropy.GaussianModel.fit(symbols, 256)
    data = entropy.encode([symbols], [model])
    assert len(data) <= 16
    assert np.array_equal(entropy.decode(data, [model], [10_000])[0], symbols)


def test_symbols_outside_the_alphabet_are_refused():
    with pytest.raises(ValueError, match="outside"):
        entropy.encode([np.array([0, 5])], [entropy.GaussianModel(0.0, 1.0, 4)])


def test_model_parameters_are_what_a_decoder_reads_back():
    model = entropy.GaussianModel.fit(np.array([0, 1, 1, 2, 7]), 8)
    assert np.float32(model.mean) == model.mean and np.float32(model.std) == model.std
