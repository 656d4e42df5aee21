"""A fit's rate term and its state: the penalty it adds, lambda steered toward a target, the scales refitted on
schedule, a checkpoint's state loaded back, and a probe that leaves the latents as they were."""

import pytest
import torch

from neofield.codec.build import neogrid_field
from neofield.latent_rate import STEER_EVERY, RateTerm, fit_scales, latent_bits, rounded_bits
from neofield.media import Media
from neofield.pricing import Pricing
from neofield.signal import Signal
from tests.conftest import noise_video


class _OneProcess:
    @staticmethod
    def from_main(value):
        return value


@pytest.fixture
def signal():
    return Signal(Media(video=noise_video(4, 16, 24), fps=10.0))


@pytest.fixture
def field(signal):
    torch.manual_seed(0)
    f = neogrid_field(signal, 3_000)
    with torch.no_grad():
        f.latents.table.normal_(0, 0.3)  # spread, as a fit leaves them: a few bits each at the step
    return f


def test_the_penalty_is_lambda_times_the_latents_bits_per_point_and_pulls_them(field, signal):
    pricing = Pricing(field, signal, RateTerm(0.5, step=0.1))
    pricing.refresh(field, 0, 100, True, _OneProcess)
    penalty = pricing.penalty()
    bits = latent_bits(field.latents.table.detach(), pricing.blocks, 0.1, pricing.scales)
    assert float(penalty) == pytest.approx(0.5 * float(bits) / signal.n_points, rel=1e-5)
    penalty.backward()
    assert field.latents.table.grad.abs().sum() > 0


def test_lambda_is_steered_up_over_a_bit_target_and_down_under_it(field, signal):
    held = Pricing(field, signal, RateTerm(0.1, step=0.1))
    held.refresh(field, 0, 100, True, _OneProcess)
    bits = rounded_bits(field.latents.table.detach(), held.blocks, 0.1, held.scales)
    over = Pricing(field, signal, RateTerm(0.1, step=0.1, target_bits=bits / 4))
    under = Pricing(field, signal, RateTerm(0.1, step=0.1, target_bits=bits * 4))
    for p in (over, under):
        p.refresh(field, 0, 100, True, _OneProcess)
    assert over.lam > 0.1 > under.lam


def test_scales_are_refitted_only_every_few_steps_and_a_fixed_lambda_holds(field, signal):
    pricing = Pricing(field, signal, RateTerm(0.3, step=0.1))
    pricing.refresh(field, 0, 100, True, _OneProcess)
    first = pricing.scales
    pricing.refresh(field, 1, 100, True, _OneProcess)
    assert pricing.scales is first
    pricing.refresh(field, STEER_EVERY, 100, True, _OneProcess)
    assert pricing.scales is not first and pricing.lam == 0.3


def test_a_saved_lambda_and_scales_load_back_and_scales_of_another_shape_are_refused(field, signal):
    pricing = Pricing(field, signal, RateTerm(0.3, step=0.1))
    scales = fit_scales(field.latents.table.detach(), pricing.blocks, 0.1, pricing.shapes)
    pricing.load(0.7, scales)
    assert pricing.lam == 0.7 and pricing.scales is scales
    with pytest.raises(ValueError, match="another shape"):
        pricing.load(0.7, scales[..., :-1])


def test_the_probe_scores_the_rounded_latents_and_gives_back_the_float_ones(field, signal):
    pricing = Pricing(field, signal, RateTerm(0.3, step=0.25, target_psnr=30.0))
    before = field.latents.table.detach().clone()
    psnr = pricing.rounded_psnr(field)
    assert torch.equal(field.latents.table.detach(), before)
    with torch.no_grad():
        field.latents.table.copy_(torch.round(before / 0.25) * 0.25)
    assert psnr == pytest.approx(pricing.probe(field), abs=1e-4)

