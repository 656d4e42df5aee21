"""The range coder: exact round trips, and bytes close to what the model promises."""

import numpy as np
import pytest

from neofield import entropy, wavefront
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


def _laplace_symbols(n: int, centre: float, scale: float, levels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.laplace(centre, scale, n)), 0, levels - 1).astype(np.int32)


def test_a_laplace_table_is_whole_numbers_summing_to_the_coders_precision_none_of_them_zero():
    for model in (entropy.LaplaceModel(3, 40_000, 8), entropy.LaplaceModel(0, 1, 2),
                  entropy.LaplaceModel(70, 65_535, 141), entropy.LaplaceModel(0, 65_535, 1 << 16)):
        freq = model.frequencies()
        assert freq.dtype == np.int64 and freq.min() >= 1 and freq.sum() == 1 << entropy.PRECISION


def test_a_laplace_table_is_the_one_pinned_on_every_machine():
    # integer arithmetic only, so these are the numbers any decoder builds; a change here breaks old bundles
    freq = entropy.LaplaceModel(3, 40_000, 8).frequencies()
    assert freq.tolist() == [1071759, 1755970, 2876980, 4713648, 2876980, 1755970, 1071759, 654150]


def test_a_laplace_table_falls_away_evenly_on_both_sides_of_its_centre():
    freq = entropy.LaplaceModel(10, 50_000, 21).frequencies()
    assert np.array_equal(freq[:10], freq[11:][::-1])
    assert (np.diff(freq[:11]) > 0).all()


def test_laplace_coded_symbols_come_back_exactly_beside_gaussian_ones():
    lap = _laplace_symbols(5_000, 20, 2.0, 41)
    gauss, levels = _gaussian_symbols(1_000, 6)
    models = [entropy.LaplaceModel.fit(lap, 41), entropy.GaussianModel.fit(gauss, levels)]
    data = entropy.encode([lap, gauss], models)
    back = entropy.decode(data, models, [lap.size, gauss.size])
    assert np.array_equal(back[0], lap) and np.array_equal(back[1], gauss.ravel())
    assert len(data) <= 1.01 * models[0].bits(lap) / 8 + models[1].bits(gauss) / 8 + 8


def test_a_fitted_laplace_codes_peaked_symbols_in_fewer_bits_than_a_gaussian():
    symbols = _laplace_symbols(20_000, 32, 0.5, 65)
    laplace = entropy.LaplaceModel.fit(symbols, 65)
    assert laplace.centre == 32
    assert laplace.bits(symbols) < 0.98 * entropy.GaussianModel.fit(symbols, 65).bits(symbols)  # 0.96 measured


def test_a_level_all_at_its_centre_or_nearly_costs_what_its_entropy_says():
    # a fitted fine level is often all 0, or nearly: the most peaked model must reach it (one stopped at
    # r = 0.02 coded 126 k zeros in 912 bytes)
    zeros = np.full(126_000, 32, np.int32)
    model = entropy.LaplaceModel.fit(zeros, 65)
    data = entropy.encode([zeros], [model])
    assert len(data) <= 16
    assert np.array_equal(entropy.decode(data, [model], [zeros.size])[0], zeros)
    sparse = zeros.copy()
    sparse[np.random.default_rng(0).choice(zeros.size, 1_000, replace=False)] = 33  # 0.8 % off the centre
    entropy_bits = -(np.log2(1_000 / 126_000) * 1_000 + np.log2(125_000 / 126_000) * 125_000)
    assert entropy.LaplaceModel.fit(sparse, 65).bits(sparse) <= 1.2 * entropy_bits  # 1.12x; 1.54x before


@pytest.mark.parametrize("centre, decay, levels", [(-1, 100, 8), (8, 100, 8), (0, 0, 8), (0, 1 << 16, 8), (0, 5, 1)])
def test_a_laplace_model_outside_its_ranges_is_refused(centre, decay, levels):
    with pytest.raises(ValueError, match="invalid Laplace"):
        entropy.LaplaceModel(centre, decay, levels)


def _clustered_grid(shape: tuple[int, ...], centre: int, seed: int = 0) -> np.ndarray:
    """Symbols as a fitted level leaves them: still regions all at the centre, busy ones spread wide."""
    rng = np.random.default_rng(seed)
    busy = np.zeros(shape, bool)
    busy[..., : shape[-1] // 3] = True
    spread = np.where(busy, rng.laplace(0, 4, shape), rng.laplace(0, 0.15, shape))
    return np.clip(np.rint(spread) + centre, 0, 2 * centre).astype(np.int32).ravel()


def _coded(symbols: np.ndarray, shape: tuple[int, ...], levels: int) -> tuple[int, float, np.ndarray]:
    """How :func:`entropy.fit_block` codes a block, its ideal bits, and what a reader gets back of it from a
    stream where another tensor follows it."""
    coding, models, runs = entropy.fit_block(symbols, shape, levels)
    assert sum(run.size for run, _ in runs) == symbols.size and len(models) == entropy.MODELS[coding]
    other = np.arange(50, dtype=np.int32) % 5
    gaussian = entropy.GaussianModel.fit(other, 5)
    reader = entropy.Reader(entropy.encode([r for r, _ in runs] + [other], [m for _, m in runs] + [gaussian]))
    back = entropy.read_block(reader, coding, models, shape, levels)
    assert np.array_equal(reader.read(gaussian, other.size), other)
    return coding, sum(m.bits(r) for r, m in runs), back


def test_a_block_in_context_comes_back_exactly_and_costs_fewer_bits_than_one_model_for_it_whole():
    for shape in [(4, 12, 30), (1_440,)]:  # a line is never coded plane by plane: as a checkerboard
        symbols = _clustered_grid(shape, 30)
        coding, bits, back = _coded(symbols, shape, 61)
        assert coding == (entropy.WAVEFRONT if len(shape) > 1 else entropy.CHECKERBOARD)
        assert np.array_equal(back, symbols)
        assert bits < 0.9 * entropy.LaplaceModel.fit(symbols, 61).bits(symbols)


def _smooth_grid(shape: tuple[int, ...], centre: int, seed: int = 0) -> np.ndarray:
    """Symbols as a fitted level leaves them where the signal is smooth: each near its neighbours, not near 0."""
    rng = np.random.default_rng(seed)
    t, y, x = np.indices(shape)
    wave = 8 * np.sin(x / 5.0 + t / 3.0) * np.cos(y / 7.0)
    return np.clip(np.rint(wave + rng.laplace(0, 0.3, shape)) + centre, 0, 2 * centre).astype(np.int32).ravel()


def test_a_smooth_block_is_coded_plane_by_plane_from_its_predictions_in_far_fewer_bits():
    shape, levels = (5, 20, 40), 41
    symbols = _smooth_grid(shape, 20)
    coding, bits, back = _coded(symbols, shape, levels)
    assert coding == entropy.WAVEFRONT and np.array_equal(back, symbols)
    anchor = entropy.LaplaceModel.fit(symbols[entropy.anchors(shape)], levels)
    segments = entropy.block_segments(symbols, shape, anchor.centre)
    checkerboard = sum(entropy.LaplaceModel.fit(s, levels).bits(s) for s in segments if s.size)
    assert bits < 0.7 * checkerboard  # 0.54 measured


def test_every_prediction_and_class_comes_from_earlier_neighbours_alone():
    # the coder sees the whole block, a reader only the planes before: both must find the same predictions
    shape, levels = (3, 4, 5), 9
    symbols = np.random.default_rng(2).integers(0, levels, size=int(np.prod(shape)))
    order, bounds, earlier = wavefront.layout(shape)
    planes = np.indices(shape).reshape(3, -1).sum(0)
    for node, near in zip(order, earlier):
        assert all(planes[m] == planes[node] - 1 for m in near if m < len(order))
    residual, classes = wavefront.residuals(symbols, shape, levels)
    assert residual.min() >= 0 and residual.max() <= 2 * levels - 2 and classes.max() < wavefront.CLASSES
    # the first node has no neighbours: predicted at the middle symbol
    assert residual[0] == symbols[0] - (levels - 1) // 2 + levels - 1


def test_a_block_with_nothing_for_its_neighbours_to_say_is_coded_whole():
    rng = np.random.default_rng(1)
    symbols = np.clip(np.rint(rng.laplace(20, 2, 2_000)), 0, 40).astype(np.int32)  # independent of position
    coding, _, back = _coded(symbols, (2_000,), 41)
    assert coding == entropy.WHOLE and np.array_equal(back, symbols)


def test_a_line_of_nodes_is_never_coded_plane_by_plane():
    symbols = _smooth_grid((1, 1, 3_000), 20)
    assert entropy.fit_block(symbols, (3_000,), 41)[0] != entropy.WAVEFRONT
    models = [entropy.LaplaceModel(40, 100, 81)] * wavefront.CLASSES
    with pytest.raises(ValueError, match="not coded plane by plane"):
        entropy.read_block(entropy.Reader(b""), entropy.WAVEFRONT, models, (3_000,), 41)


def test_a_block_with_the_wrong_number_of_models_is_refused():
    with pytest.raises(ValueError, match="has 7 models, not 3"):
        entropy.read_block(entropy.Reader(b""), entropy.CHECKERBOARD, [entropy.LaplaceModel(0, 100, 4)] * 3, (2, 2),
                           4)


def test_a_stream_whose_predictions_leave_the_levels_is_refused():
    class Largest:  # a damaged stream: every residual at the top of its alphabet
        def read(self, model, n):
            return np.full(n, model.levels - 1, np.int32)

    models = [entropy.LaplaceModel(2, 100, 5)] * wavefront.CLASSES
    with pytest.raises(ValueError, match="outside their levels"):
        entropy.read_block(Largest(), entropy.WAVEFRONT, models, (2, 2), 3)
