"""The rate term's bits: a probability model that sums to one, prices what the bundle codes, and pushes the
latents towards 0."""

import pytest
import torch

from neofield.codec.build import neogrid_field
from neofield.codec import make_field
from neofield.latent_rate import LATENT_STEP, latent_bits, laplace_bits, perturb_latents, rated
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
