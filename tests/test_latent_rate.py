"""The rate term's bits: a probability model that sums to one, prices what the bundle codes, and pushes the
latents towards 0."""

import math

import pytest
import torch

from neofield.codec.build import neogrid_field
from neofield.codec import make_field
from neofield.latent_rate import (CONTINUOUS_FLOOR, LATENT_STEP, MIN_SCALE, SCALE_GRID, STEER_CLAMP, STEER_GAIN,
                                  fit_scales, grids, latent_bits, laplace_bits, perturb_latents, rated, rounded_bits,
                                  scale_constants, scale_map, steer, steer_to_psnr)
from neofield.media import Media
from neofield.signal import Signal
from tests.conftest import noise_video


@pytest.fixture
def field():
    torch.manual_seed(0)
    return neogrid_field(Signal(Media(video=noise_video(4, 16, 24), fps=10.0)), 3_000)


@pytest.mark.parametrize("scale", [0.05, 0.7, 4.0])
def test_the_bins_probabilities_sum_to_one(scale):
    k = torch.arange(-400, 401, dtype=torch.float64)
    total = (2.0 ** -laplace_bits(k, torch.tensor(scale, dtype=torch.float64))).sum()
    assert abs(float(total) - 1) < 1e-4  # the floor of 2**-24 a bin adds a little


def test_a_value_costs_more_the_further_it_lies_from_zero_and_the_narrower_the_model():
    bits = laplace_bits(torch.tensor([0.0, 1.0, 2.0, 5.0]), torch.tensor(1.0))
    assert (bits.diff() > 0).all()
    assert laplace_bits(torch.tensor([0.0]), torch.tensor(0.3)) < laplace_bits(torch.tensor([0.0]), torch.tensor(2.0))


def test_a_value_far_out_costs_bits_that_grow_linearly_and_stay_finite():
    scale = torch.tensor(0.3, dtype=torch.float64)
    bits = laplace_bits(torch.tensor([40.0, 41.0, 1e4], dtype=torch.float64), scale)
    assert torch.isfinite(bits).all()
    assert float(bits[1] - bits[0]) == pytest.approx(1 / (0.3 * math.log(2)), rel=1e-9)


def test_the_closed_form_gradient_of_the_bits_is_their_derivative():
    g = torch.Generator().manual_seed(0)
    y = (torch.randn(200, 2, generator=g, dtype=torch.float64) * 2).requires_grad_()
    scales = torch.tensor([0.4, 1.7], dtype=torch.float64).expand(200, 2).contiguous()
    assert torch.autograd.gradcheck(lambda v: latent_bits(v[:, None, :], ((0, 200, 0), (0, 200, 1)), 1.0,
                                                          constants=scale_constants(scales)), (y,))


def test_bits_priced_without_a_gradient_equal_those_priced_with_one():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(300, 1, 2, generator=g) * 3
    blocks = ((0, 300, 0), (0, 300, 1))
    with torch.no_grad():
        bare = latent_bits(y, blocks, 0.5)
    tracked = latent_bits(y.clone().requires_grad_(), blocks, 0.5)
    tracked.backward()
    assert float(bare) == float(tracked.detach()) > 0


def test_kept_scale_constants_price_and_pull_the_latents_exactly_as_the_scales_do():
    g = torch.Generator().manual_seed(2)
    y = torch.randn(400, 1, 2, generator=g) * 2
    blocks = ((0, 400, 0), (0, 400, 1))
    scales = torch.tensor([0.4, 1.7])
    a, b = y.clone().requires_grad_(), y.clone().requires_grad_()
    by_scales = latent_bits(a, blocks, 0.5, scales)
    by_constants = latent_bits(b, blocks, 0.5, constants=scale_constants(scale_map(b, blocks, scales)))  # as fit
    (by_scales + by_constants).backward()
    assert torch.equal(by_scales, by_constants) and torch.equal(a.grad, b.grad)


def test_laid_scales_price_the_table_as_its_blocks_do(field):
    table, blocks = rated(field)
    with torch.no_grad():
        table.normal_(0, 0.5)
    scales = fit_scales(table, blocks, LATENT_STEP)
    by_block = sum(float(laplace_bits(table.detach().reshape(len(table), -1)[a:b, c] / LATENT_STEP, scales[i]).sum())
                   for i, (a, b, c) in enumerate(blocks))
    laid = scale_map(table, blocks, scales)
    with torch.no_grad():
        assert float(latent_bits(table, blocks, LATENT_STEP, constants=scale_constants(laid))) == pytest.approx(
            by_block, rel=1e-5)
        assert float(latent_bits(table, blocks, LATENT_STEP, scales)) == pytest.approx(by_block, rel=1e-5)


def test_the_fitted_scale_is_the_candidate_that_prices_the_rounded_latents_cheapest():
    g = torch.Generator().manual_seed(1)
    for spread in (0.5, 2.0, 9.0):  # in steps
        table = torch.randn(3_000, generator=g) * spread * LATENT_STEP
        (scale,) = fit_scales(table[:, None, None], ((0, 3_000, 0),), LATENT_STEP)
        symbols = torch.round(table / LATENT_STEP)
        candidates = symbols.abs().mean() * torch.tensor(SCALE_GRID)
        every = torch.stack([laplace_bits(symbols, c).sum() for c in candidates])
        assert float(scale) == pytest.approx(float(candidates[every.argmin()]), rel=1e-6)


def test_the_gradient_of_the_bits_pulls_every_latent_towards_zero(field):
    table, blocks = rated(field)
    with torch.no_grad():
        table.normal_(0, 1.0)
    latent_bits(table, blocks, LATENT_STEP).backward()
    moved = table.grad.flatten() * table.detach().flatten()
    assert (moved[table.detach().flatten().abs() > LATENT_STEP] > 0).all()  # descent lowers every |latent|


def test_latents_at_zero_cost_less_than_spread_ones_and_every_block_is_priced(field):
    table, blocks = rated(field)
    assert sum(b - a for a, b, _ in blocks) == len(table) * field.layout.channels
    spread = latent_bits(table.detach().normal_(0, 1.0), blocks, LATENT_STEP)
    zeros = latent_bits(torch.zeros_like(table), blocks, LATENT_STEP)
    assert zeros < 0.1 * spread


def test_perturbing_rounds_to_the_step_or_stays_within_half_of_it_and_gives_back_the_values(field):
    table, _ = rated(field)
    with torch.no_grad():
        table.normal_(0, 1.0)
    original = table.detach().clone()
    g = torch.Generator().manual_seed(0)
    p, saved = perturb_latents(table, LATENT_STEP, hard=False, gen=g)
    assert p is table and torch.equal(saved, original)
    assert (table - original).abs().max() <= LATENT_STEP / 2 + 1e-6 and not torch.equal(table, original)
    with torch.no_grad():
        table.copy_(original)
    perturb_latents(table, LATENT_STEP, hard=True, gen=g)
    steps = table.detach() / LATENT_STEP
    assert torch.allclose(steps, steps.round(), atol=1e-4)


def test_a_field_without_pyramids_has_nothing_to_price():
    signal = Signal(Media(video=noise_video(2, 4, 6), fps=10.0))
    with pytest.raises(ValueError, match="neogrid"):
        rated(make_field(signal, "tiny", segments=2))


def test_the_fitted_scales_price_sparse_latents_near_their_entropy_where_the_mean_overprices_them():
    g = torch.Generator().manual_seed(0)
    n = 20_000  # one channel of nine latents in ten at 0, the rest a step away: a fine level under a rate term;
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)  # the other channel spread wide
    sparse = torch.where(torch.rand(n, generator=g) < 0.1, sign, 0.0)
    table = torch.stack([sparse, torch.randn(n, generator=g) * 3], dim=1).round()[:, None, :] * LATENT_STEP
    blocks = ((0, n, 0), (0, n, 1))
    entropy = 0.0
    for column in (sparse, table[:, 0, 1] / LATENT_STEP):
        _, counts = torch.unique(column.round(), return_counts=True)
        entropy -= float((counts * torch.log2(counts / counts.sum())).sum())
    fitted = rounded_bits(table, blocks, LATENT_STEP, fit_scales(table, blocks, LATENT_STEP))
    mean_scale = rounded_bits(table, blocks, LATENT_STEP)
    assert entropy <= fitted < 1.05 * entropy < mean_scale


def test_a_block_that_still_rounds_to_zero_is_priced_by_its_float_values_so_it_can_grow():
    n = 5_000
    for spread in (0.02, 0.3):  # latents, in steps, that all round to 0: a fresh table, and one about to grow
        table = (torch.rand(n, generator=torch.Generator().manual_seed(0)) * 2 - 1) * spread * LATENT_STEP
        (scale,) = fit_scales(table[:, None, None], ((0, n, 0),), LATENT_STEP)
        assert float(scale) == pytest.approx(max(CONTINUOUS_FLOOR * spread / 2, MIN_SCALE), rel=0.05)


def test_steering_to_a_psnr_raises_lambda_above_it_and_lowers_it_below():
    assert steer_to_psnr(0.1, 31.0, 30.0) > 0.1 > steer_to_psnr(0.1, 29.0, 30.0)
    assert steer_to_psnr(0.1, 30.0, 30.0) == pytest.approx(0.1)
    assert steer_to_psnr(0.1, 60.0, 30.0) == pytest.approx(0.1 * STEER_CLAMP ** STEER_GAIN)  # a bounded step


def test_steering_raises_lambda_over_the_target_lowers_it_under_and_moves_it_a_bounded_step():
    assert steer(0.1, 120.0, 100.0) > 0.1 > steer(0.1, 80.0, 100.0)
    assert steer(0.1, 100.0, 100.0) == pytest.approx(0.1)
    assert steer(0.1, 1e9, 100.0) == pytest.approx(0.1 * STEER_CLAMP ** STEER_GAIN)
    assert steer(0.1, 0.0, 100.0) == pytest.approx(0.1 / STEER_CLAMP ** STEER_GAIN)


def test_in_context_each_latent_is_priced_by_its_neighbours_and_clustered_latents_cost_fewer_bits(field):
    table, blocks = rated(field)
    shapes = grids(field)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # each level busy over its right third along x, still (all 0) elsewhere
        table.zero_()
        for (a, b, c), shape in zip(blocks, shapes):
            busy = (torch.arange(b - a) % shape[-1]) >= 2 * shape[-1] // 3
            table[a:b, 0, c][busy] = torch.randn(int(busy.sum()), generator=g)
    per_block = fit_scales(table, blocks, LATENT_STEP)
    in_context = fit_scales(table, blocks, LATENT_STEP, shapes)
    assert in_context.shape == (2, len(table), field.layout.channels)
    a, b, c = blocks[-1]  # the finest level: its still latents far from the busy ones get the least scale
    still = (table[a:b, 0, c] == 0) & (torch.arange(b - a) % shapes[-1][-1] < shapes[-1][-1] // 3)
    assert in_context[0, a:b, c][still].max() < in_context[0, a:b, c][~still].max()
    assert rounded_bits(table, blocks, LATENT_STEP, in_context) < 0.9 * rounded_bits(table, blocks, LATENT_STEP,
                                                                                     per_block)


def test_in_context_a_latent_is_priced_from_its_prediction_so_a_smooth_level_costs_little(field):
    # a grid is coded plane by plane, each latent as its distance from the median of its earlier neighbours
    # (neofield.wavefront): a level at one value away from 0 costs next to nothing, where from 0 it costs much
    table, blocks = rated(field)
    shapes = grids(field)
    with torch.no_grad():
        table.fill_(5 * LATENT_STEP)
    pricing = fit_scales(table, blocks, LATENT_STEP, shapes)
    a, b, c = blocks[-1]
    assert torch.equal(pricing[1, a + 1:b, c], torch.full((b - a - 1,), 5.0))  # all but the first: predicted 5
    assert pricing[1, a, c] == 0  # the first node of a grid has no earlier neighbour
    smooth = rounded_bits(table, blocks, LATENT_STEP, pricing)
    assert smooth < 0.05 * rounded_bits(table, blocks, LATENT_STEP, fit_scales(table, blocks, LATENT_STEP))


@pytest.mark.parametrize("shape", [(4, 5, 6), (7, 9), (1, 3, 8)])
def test_the_rate_terms_predictions_are_the_coders(shape):
    from neofield import wavefront
    from neofield.latent_rate import _predictions

    values = torch.randint(-4, 5, shape, generator=torch.Generator().manual_seed(1)).float().reshape(-1)
    pred, group = _predictions(values, shape)
    residual, classes = wavefront.residuals(values.long().numpy() + 4, shape, 9)
    order, _, _ = wavefront.layout(shape)
    assert torch.equal(pred[order].long(), torch.from_numpy(values.long().numpy()[order] - (residual - 8)))
    assert torch.equal(group[order], torch.from_numpy(classes))
