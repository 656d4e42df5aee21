"""Rate control: sizes and rates parsed strictly, depths and widths searched to hit a target."""

import pytest

import neofield
from neofield import bundle as bundle_io, rate
from neofield.codec import make_field
from neofield.errors import NeofieldError
from neofield.media import read_media
from neofield.signal import Signal


@pytest.mark.parametrize("text, expected", [("20KB", 20_000), ("1.5MB", 1_500_000), ("300KiB", 307_200),
                                            ("40000", 40_000), ("12k", 12_000)])
def test_sizes_are_parsed_in_decimal_and_binary_units(text, expected):
    assert rate.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "KB", "-3KB", "20 parsecs", "0"])
def test_a_bad_size_is_a_clear_error(text):
    with pytest.raises(NeofieldError, match="--size"):
        rate.parse_bytes(text)


def test_a_bitrate_is_bytes_over_the_duration():
    assert rate.parse_bitrate("300k", 2.0) == 75_000
    assert rate.parse_bitrate("1.2Mbps", 1.0) == 150_000
    with pytest.raises(NeofieldError, match="--bitrate"):
        rate.parse_bitrate("fast", 1.0)


@pytest.fixture(scope="module")
def signal(tiny_clip):
    return Signal(read_media(tiny_clip))


def test_the_depth_search_fills_the_byte_budget(signal):
    field = make_field(signal, "tiny", segments=4)
    for budget in (9_000, 14_000):
        bits = rate.bits_for_size(field, budget)
        assert rate.coded_bytes(field, bits) <= budget
        assert rate.coded_bytes(field, bits + 0.1) > 0.97 * budget  # and leaves little of it unused


def test_a_larger_target_gets_a_wider_model(signal):
    def build(dim):
        return make_field(signal, "tiny", segments=4, dim=dim, ffn_dim=4 * dim)

    small, large = rate.width_for_size(build, 5_000, 1_400), rate.width_for_size(build, 200_000, 1_400)
    assert small < large and small in rate.WIDTHS and large in rate.WIDTHS


def test_the_psnr_search_takes_the_lowest_depth_that_meets_the_target(signal):
    field = make_field(signal, "tiny", segments=4)
    probe = rate.PsnrProbe(signal, points=4096)
    best = probe(field)
    bits = rate.bits_for_psnr(field, probe, best - 1.0)
    assert rate.SEARCH_BITS[0] < bits < rate.SEARCH_BITS[1]
    assert probe(field) == best  # the search leaves the field as it was


def test_a_size_target_on_a_grid_field_lands_within_ten_percent_by_its_depth(tiny_clip, tmp_path):
    report = neofield.encode(tiny_clip, tmp_path / "s.nf", steps=40, batch_size=256, device="cpu", size="9KB",
                             arch="grid")
    assert abs(report.bytes / 9_000 - 1) <= 0.10, report.target
    assert report.target["size_error"] == pytest.approx(report.bytes / 9_000 - 1, abs=1e-4)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    """8 frames of bikes at 64x28 (14,336 points): big enough for a rate term to find its level in 300 steps."""
    from neofield.media import Selection, write_video
    from tests.conftest import BIKES

    media = read_media(BIKES, Selection(max_frames=8, resize=(64, 28)))
    path = tmp_path_factory.mktemp("media") / "small.mp4"
    write_video(path, iter(media.video), media.fps, lossless=True)
    return path


def test_a_size_target_on_neogrid_is_met_by_steering_lambda_during_the_fit(small_clip, tmp_path):
    report = neofield.encode(small_clip, tmp_path / "s.nf", steps=300, device="cpu", size="3KB")
    t = report.target
    assert abs(report.bytes / 3_000 - 1) <= rate.SIZE_TOLERANCE, t
    assert t["lambda"] > 0 and 0.5 <= t["latent_step"] / t["fitted_step"] <= 2  # the fit itself got near it
    assert report.quality["video_psnr_db"] > 27
    q = bundle_io.load(tmp_path / "s.nf").meta["quantization"]
    assert q["lambda"] == t["lambda"] and q["latent_step"] == t["latent_step"]


def test_a_size_the_fit_cannot_fill_is_met_by_a_finer_latent_step(small_clip, tmp_path):
    # 8 KB: the fit leaves the latents at ~6.6 KB (6 KB it fills itself, with the layer of 8 hidden tokens)
    report = neofield.encode(small_clip, tmp_path / "s.nf", steps=300, device="cpu", size="8KB")
    t = report.target
    assert abs(report.bytes / 8_000 - 1) <= rate.SIZE_TOLERANCE, t
    assert t["latent_step"] < t["fitted_step"] and "stored at step" in t["notes"][0]


def test_a_size_under_the_side_information_says_so(tiny_clip, tmp_path):
    report = neofield.encode(tiny_clip, tmp_path / "s.nf", steps=10, batch_size=256, device="cpu", size="500")
    assert "the metadata and the backbone alone take" in report.target["notes"][-1]


def test_a_steered_field_grows_with_the_target_but_never_past_half_a_parameter_a_point_or_its_time():
    assert rate.steered_parameters(4_000, 10**7) < rate.steered_parameters(40_000, 10**7) < \
        rate.steered_parameters(400_000, 10**7)
    assert rate.steered_parameters(400_000, 100_000) <= 1.5 * 0.5 * 100_000  # the nearest rung to the cap
    assert rate.steered_parameters(400_000, 10**7, seconds=60) < rate.steered_parameters(400_000, 10**7, seconds=600)
    assert rate.steered_parameters(400_000, 10**7, seconds=60) <= 1.5 * rate.PARAMETERS_PER_SECOND * 60
    assert rate.lambda_for(0.02) > rate.lambda_for(0.2) > 0


def test_a_budget_past_the_growth_seconds_buys_steps_where_the_field_is_already_large_for_its_signal():
    small, large = 2 * 10**6, 10**8  # points: a sixth of a parameter each is under, then over, the grown field
    grown = rate.steered_parameters(None, large, seconds=rate.GROWTH_SECONDS)
    assert rate.steered_parameters(None, large, seconds=rate.GROWTH_SECONDS / 2) < grown
    assert rate.steered_parameters(None, small, seconds=300) == rate.steered_parameters(None, small, seconds=3600) \
        == rate.steered_parameters(None, small, seconds=rate.GROWTH_SECONDS)
    assert grown < rate.steered_parameters(None, large, seconds=300) < rate.steered_parameters(None, large, seconds=600)
    assert rate.steered_parameters(None, small) > grown  # a fit by steps is not held by a clock


def test_latents_with_more_bits_each_are_fitted_at_a_finer_step():
    steps = [rate.latent_step_for(b) for b in (0.1, 1.0, 2.0, 3.0, 100.0)]
    assert steps[0] == steps[1] == rate.LATENT_STEP and steps[2] == rate.LATENT_STEP / 2
    assert steps[3] == rate.LATENT_STEP / 4 and steps[4] == rate.LATENT_STEP / 16  # no finer than a 16th


def test_a_psnr_target_on_neogrid_is_met_by_steering_lambda_and_a_lower_one_costs_fewer_bytes(small_clip, tmp_path):
    low, high = (neofield.encode(small_clip, tmp_path / f"p{p}.nf", steps=300, device="cpu", target_psnr=p)
                 for p in (28.0, 31.0))
    for report, asked in ((low, 28.0), (high, 31.0)):
        assert report.target["psnr"] == report.quality["video_psnr_db"] >= asked
        assert not any("missed" in note for note in report.target["notes"])
        assert report.quality["video_psnr_db"] < asked + 1  # the step search spent the fit's excess on bytes
    assert low.bytes < high.bytes and low.target["lambda"] > high.target["lambda"]
    assert bundle_io.load(tmp_path / "p28.0.nf").meta["fit"]["config"]["rate"]["target_psnr"] == 28.0


def test_an_unreachable_psnr_on_neogrid_says_the_fit_reached_no_more(tiny_clip, tmp_path):
    report = neofield.encode(tiny_clip, tmp_path / "p.nf", steps=20, batch_size=256, device="cpu",
                             target_psnr=60.0)
    assert report.quality["video_psnr_db"] < 60 and "missed the PSNR target by" in report.target["notes"][-1]
    assert "give it more --time-budget" in report.target["notes"][-1]


def test_an_unreachable_psnr_says_by_how_much_and_why(tiny_clip, tmp_path):  # the depth search (--arch grid)
    report = neofield.encode(tiny_clip, tmp_path / "p.nf", steps=20, batch_size=256, device="cpu",
                             target_psnr=60.0, arch="grid")
    assert report.quality["video_psnr_db"] < 60
    assert "missed the PSNR target by" in report.target["notes"][-1]
    assert "the fit itself reached" in report.target["notes"][-1]
    assert report.target["bits"]["backbone"] < 12  # out of reach: no bits spent beyond what keeps the fit


def test_targets_exclude_each_other_and_explicit_bits(tiny_clip, tmp_path):
    with pytest.raises(NeofieldError, match="one target"):
        neofield.encode(tiny_clip, tmp_path / "x.nf", size="9KB", target_psnr=30.0)
    with pytest.raises(NeofieldError, match="leave out --bits"):
        neofield.encode(tiny_clip, tmp_path / "x.nf", size="9KB", bits=neofield.BitDepths(5, 5))
    with pytest.raises(NeofieldError, match="needs --dtype quantized"):
        neofield.encode(tiny_clip, tmp_path / "x.nf", bitrate="100k", weights_dtype="float16")
    assert not (tmp_path / "x.nf").exists()
