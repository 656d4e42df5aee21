"""The rate–distortion maths of benchmarks/rd.py: BD-rate and rate interpolation, on made-up curves.

benchmarks/ is not a package, so the script is loaded from its path. No media, no fitting: milliseconds.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

from neofield.media import Media

RD_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "rd.py"


@pytest.fixture(scope="module")
def rd():
    spec = importlib.util.spec_from_file_location("rd_benchmark", RD_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# a codec-like curve: PSNR rises ~6 dB per quadrupling of the rate, flattening at the top
RATES = [5_000, 8_000, 12_500, 18_000, 28_000, 47_000, 82_000]
PSNRS = [24.0, 29.5, 32.2, 34.7, 37.2, 39.4, 41.1]


def test_identical_curves_give_zero(rd):
    assert rd.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_half_the_rate_everywhere_gives_minus_fifty_percent(rd):
    half = [r / 2 for r in RATES]
    assert rd.bd_rate(half, PSNRS, RATES, PSNRS) == pytest.approx(-50.0, abs=0.5)
    assert rd.bd_rate(RATES, PSNRS, half, PSNRS) == pytest.approx(100.0, abs=1.0)  # and the other way round


def test_half_the_rate_sampled_elsewhere_still_gives_minus_fifty_percent(rd):
    """One smooth curve sampled at other PSNRs for each codec: only the interpolation stands between them."""
    def rate(psnr):
        return np.exp(4.0 + 0.12 * psnr + 0.002 * psnr**2)

    a, b = np.linspace(24.0, 41.0, 6), np.linspace(22.0, 44.0, 8)
    assert rd.bd_rate(rate(a) / 2, a, rate(b), b) == pytest.approx(-50.0, abs=0.5)


def test_non_overlapping_curves_give_none(rd):
    assert rd.bd_rate(RATES, [p + 30 for p in PSNRS], RATES, PSNRS) is None
    value, why = rd.bd_rate_why(RATES, [p + 30 for p in PSNRS], RATES, PSNRS, ("neofield", "x264"))
    assert value is None and "do not overlap" in why


def test_fewer_than_four_points_give_none(rd):
    value, why = rd.bd_rate_why(RATES[:3], PSNRS[:3], RATES, PSNRS, ("neofield", "x264"))
    assert value is None and "neofield has 3 points" in why


def test_dominated_points_leave_the_curve(rd):
    """A setting that costs more for less PSNR is not on the curve, so it cannot bend it."""
    rates, psnrs = rd.frontier([*RATES, 30_000], [*PSNRS, 20.0])
    assert list(rates) == RATES and list(psnrs) == PSNRS
    assert rd.bd_rate([*RATES, 30_000], [*PSNRS, 20.0], RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_rate_at_interpolates_log_rate(rd):
    assert rd.rate_at(PSNRS[2], RATES, PSNRS) == pytest.approx(RATES[2])
    middle = (PSNRS[2] + PSNRS[3]) / 2
    assert rd.rate_at(middle, RATES, PSNRS) == pytest.approx(math.sqrt(RATES[2] * RATES[3]))
    assert rd.rate_at(PSNRS[0] - 0.01, RATES, PSNRS) is None
    assert rd.rate_at(PSNRS[-1] + 0.01, RATES, PSNRS) is None


def test_the_published_bd_rates_come_back_from_their_csvs(rd):
    """docs/rate-term.md's figures, from the CSVs beside them: the rate term against the size ladder and x264."""
    def curve(name, codec):
        with (Path(__file__).resolve().parent.parent / "docs" / "rd" / name).open() as f:
            rows = [r for r in csv.DictReader(f) if r["codec"] == codec]
        return [float(r["bytes"]) for r in rows], [float(r["video_psnr_db"]) for r in rows]

    lam = curve("bikes_2s_320x136_lambda_60s.csv", "neofield")
    assert rd.bd_rate(*lam, *curve("bikes_2s_320x136_size_60s.csv", "neofield")) == pytest.approx(-43.4, abs=0.1)
    assert rd.bd_rate(*lam, *curve("bikes_2s_320x136_lambda_60s.csv", "x264")) == pytest.approx(81.8, abs=0.1)


def test_neofield_ladder_is_rising_size_targets(rd):
    assert [len(rd.neofield_ladder("video", n)) for n in (1, 2, 3, 4, 6)] == [1, 2, 3, 4, 6]
    sizes = [kwargs["size"] for kwargs in rd.neofield_ladder("audio", 6)]
    assert sizes == sorted(sizes) and sizes[0] == rd.SIZES["audio"][0] and sizes[-1] == rd.SIZES["audio"][-1]
    with pytest.raises(SystemExit):
        rd.neofield_ladder("video", 0)


def test_av_anchor_adds_video_and_opus_bytes(rd):
    """With pictures and sound, a neofield point's anchor is x264 at its video PSNR + Opus at its audio PSNR."""
    media = Media(video=np.zeros((25, 4, 4, 3), np.uint8), fps=25.0, audio=np.zeros((48_000, 1), np.float32),
                  sample_rate=48_000)

    def point(codec, nbytes, video=None, audio=None):
        return rd.row(codec, "", nbytes, media, {"video_psnr_db": video, "audio_psnr_db": audio}, None)

    classical = [point("x264", r, video=p) for r, p in zip(RATES, PSNRS)]
    classical += [point("opus", r, audio=p) for r, p in zip([1_000, 2_000, 4_000], [40.0, 50.0, 60.0])]
    nf = [point("neofield", 100_000, video=PSNRS[2], audio=50.0), point("neofield", 1, video=50.0, audio=50.0)]
    anchors = rd.av_anchor_rows(nf, classical, media)
    assert [(a["codec"], a["bytes"]) for a in anchors] == [("x264+opus", RATES[2] + 2_000)]  # 50 dB: not reached


def test_comparisons_report_bd_rate_and_ratios(rd):
    """The printed comparison: neofield at half x264's bytes on x264's own points (fewer of them, so
    interpolated a little differently) reads about -50 %, and exactly 0.50x at both ends."""
    media = Media(video=np.zeros((25, 4, 4, 3), np.uint8), fps=25.0)
    x264 = [rd.row("x264", str(i), r, media, {"video_psnr_db": p}, 0.1) for i, (r, p) in enumerate(zip(RATES, PSNRS))]
    nf = [rd.row("neofield", str(i), r // 2, media, {"video_psnr_db": p}, 1.0)
          for i, (r, p) in enumerate(zip(RATES[1:-1], PSNRS[1:-1]))]
    line = next(line for line in rd.comparisons(nf, x264, [], media) if line.startswith("| x264 |"))
    assert float(re.search(r"\| ([-+0-9.]+) %", line).group(1)) == pytest.approx(-50.0, abs=0.5)
    assert line.count("0.50x") == 2


def test_sizes_option_reads_neofields_units(rd):
    assert rd.parse_sizes("7KB,9KB,12000") == [7000, 9000, 12000]


def test_a_csv_reads_back_as_the_rows_it_was_written_from(rd, tmp_path):
    rows = [{"codec": "x264", "setting": "crf 30", "bytes": 18120, "kbps": 72.48, "video_psnr_db": 34.7388,
             "video_ssim": 0.95971, "audio_psnr_db": None, "seconds_to_encode": 0.08}]
    rd.write_csv(tmp_path / "rd.csv", rows)
    assert rd.read_csv(tmp_path / "rd.csv") == rows


def test_replot_of_a_missing_csv_is_one_clear_error(rd, tmp_path):
    with pytest.raises(SystemExit, match="is not a file"):
        rd.main(["a title", "--replot", str(tmp_path / "none.csv")])


def test_replot_draws_an_earlier_runs_csv(rd, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rd.write_csv(tmp_path / "rd.csv", [{"codec": c, "setting": str(k), "bytes": b, "kbps": b / 250,
                                        "video_psnr_db": p + (c == "neofield"), "video_ssim": None,
                                        "audio_psnr_db": None, "seconds_to_encode": None}
                                       for c in ("x264", "neofield") for k, (b, p) in enumerate(zip(RATES, PSNRS))])
    rd.main(["a title", "--replot", str(tmp_path / "rd.csv")])
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| neofield | 0 | 5,000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="pass --force"):  # a plot already there is kept unless asked
        rd.main(["a title", "--replot", str(tmp_path / "rd.csv")])
