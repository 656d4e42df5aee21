"""Uniform quantization: bounded error, exact constants, honest entropy."""

import numpy as np
import pytest

import torch

from neofield.quantize import BitDepths, entropy_bytes, fake_quantize, levels_for, quantize


@pytest.mark.parametrize("bits", [1, 4, 8, 12])
def test_every_value_comes_back_within_half_a_step(bits):
    x = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    q = quantize(x, bits)
    step = (x.max() - x.min()) / (2**bits - 1)
    assert q.symbols.max() <= 2**bits - 1
    assert np.abs(q.dequantize() - x).max() <= step / 2 + 1e-6 * np.abs(x).max()  # + float32 rounding


def test_per_channel_fits_rows_of_different_ranges_better():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(8, 100)) * np.logspace(-3, 0, 8)[:, None]).astype(np.float32)
    per_tensor = np.abs(quantize(x, 6).dequantize() - x)
    per_row = np.abs(quantize(x, 6, axis=0).dequantize() - x)
    assert per_row[0].max() < per_tensor[0].max() / 10  # the quiet row keeps its detail
    assert quantize(x, 6, axis=0).scale.shape == (8,)


def test_a_constant_tensor_or_row_is_exact():
    x = np.full((3, 4), 0.25, np.float32)
    assert np.array_equal(quantize(x, 4).dequantize(), x)
    y = np.stack([np.full(5, -2.0), np.linspace(0, 1, 5)]).astype(np.float32)
    assert np.array_equal(quantize(y, 8, axis=0).dequantize()[0], y[0])


def test_a_fractional_depth_gives_levels_between_the_whole_ones():
    assert levels_for(5) == 32 and levels_for(5.5) == 45 and levels_for(6) == 64
    q = quantize(np.linspace(-1, 1, 1000, dtype=np.float32), 5.5)
    assert q.levels == 45 and q.symbols.max() == 44 and abs(q.bits - 5.5) < 0.01


def test_fake_quantize_gives_the_values_a_decoder_reconstructs():
    x = torch.randn(64, 32)
    for bits in (3, 6, 8):
        expected = quantize(x.numpy(), bits).dequantize()
        assert np.allclose(fake_quantize(x, levels_for(bits)).numpy(), expected, atol=1e-6)


def test_bit_depths_are_checked_and_set_per_group():
    depths = BitDepths(6, 4)
    assert depths.for_group("backbone") == 6 and depths.for_group("latents") == 4
    with pytest.raises(ValueError, match="bits"):
        BitDepths(0.5, 6)


def test_bit_depth_is_checked():
    with pytest.raises(ValueError, match="bits"):
        quantize(np.zeros(3), 0)
    with pytest.raises(ValueError, match="bits"):
        quantize(np.zeros(3), 17)


def test_entropy_of_known_distributions():
    uniform4 = np.repeat(np.arange(4), 250).astype(np.uint16)  # 2 bits a symbol
    assert entropy_bytes(uniform4) == pytest.approx(1000 * 2 / 8)
    assert entropy_bytes(np.zeros(100, np.uint16)) == 0.0
    assert entropy_bytes(np.zeros(0, np.uint16)) == 0.0


def test_a_fixed_step_gives_symbols_centred_on_zero_within_half_a_step():
    from neofield.quantize import quantize_step

    values = np.random.default_rng(0).laplace(0, 0.3, 1000).astype(np.float32)
    q = quantize_step(values, 0.2)
    assert q.levels % 2 == 1 and q.levels >= 3 and float(q.scale) == np.float32(0.2)
    assert q.symbols[np.abs(values) < 0.09].tolist() == [(q.levels - 1) // 2] * int((np.abs(values) < 0.09).sum())
    assert np.abs(q.dequantize() - values).max() <= 0.1 + 1e-6
    assert quantize_step(np.zeros(5, np.float32), 0.2).levels == 3  # all 0 still has a valid alphabet
