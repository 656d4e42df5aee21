"""Option checks: every bad number is one clear error, never a silent default."""

import math

import pytest

from neofield.errors import NeofieldError
from neofield.options import (
    check_device,
    fraction,
    non_negative_int,
    parse_sigma,
    parse_size,
    positive_float,
    positive_int,
)


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "4"])
def test_positive_int_refuses_zero_negatives_and_non_integers(value):
    with pytest.raises(NeofieldError, match="--steps"):
        positive_int("--steps", value)


def test_positive_int_passes_none_and_good_values_through_and_caps():
    assert positive_int("--steps", None) is None and positive_int("--steps", 7) == 7
    with pytest.raises(NeofieldError, match="too large"):
        positive_int("--batch-size", 10**9, maximum=1 << 22)


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, -math.inf])
def test_positive_float_refuses_zero_negative_nan_and_infinity(value):
    with pytest.raises(NeofieldError, match="--lr"):
        positive_float("--lr", value)


def test_fraction_and_non_negative_bounds():
    assert fraction("--audio-share", 0.0) == 0.0 and fraction("--audio-share", 1) == 1.0
    with pytest.raises(NeofieldError, match="between 0 and 1"):
        fraction("--audio-share", 1.5)
    assert non_negative_int("--warmup", 0) == 0
    with pytest.raises(NeofieldError, match=">= 0"):
        non_negative_int("--warmup", -1)


@pytest.mark.parametrize("text,message", [("big", "WIDTHxHEIGHT"), ("0x10", "positive"), ("20000x20000", "too large"),
                                          ("10x", "WIDTHxHEIGHT"), ("-4x4", "WIDTHxHEIGHT")])
def test_parse_size_refuses_malformed_empty_and_huge_sizes(text, message):
    with pytest.raises(NeofieldError, match=message):
        parse_size(text)


def test_parse_size_reads_width_then_height():
    assert parse_size("320x180") == (320, 180) and parse_size(" 16X9 ") == (16, 9)


def test_parse_sigma_takes_one_value_or_one_per_input():
    assert parse_sigma("10") == 10.0 and parse_sigma("1,1,60") == (1.0, 1.0, 60.0)
    for bad in ("x", "1,0", "nan", "inf"):
        with pytest.raises(NeofieldError, match="--rff-sigma"):
            parse_sigma(bad)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "CPU", "", "cuda:1:2"])
def test_unknown_device_names_are_refused(device):
    with pytest.raises(NeofieldError, match="--device must be"):
        check_device(device)


def test_devices_this_machine_lacks_are_refused_up_front():
    import torch

    assert check_device("cpu") == "cpu" and check_device("auto") == "auto"
    if not torch.cuda.is_available():
        with pytest.raises(NeofieldError, match="no CUDA device"):
            check_device("cuda:1")
    else:
        with pytest.raises(NeofieldError, match="CUDA device"):
            check_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(NeofieldError, match="MPS"):
            check_device("mps")
