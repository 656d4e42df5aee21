"""`neofield set fit / encode / classify` and `decode --item`, as a user runs them (subprocesses)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from test_cli import assert_one_line_error, neofield

pytest.importorskip("sklearn")  # the digits are scikit-learn's ('sets' extra)

QUICK = ["--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def digits_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    out = root / "digits.nf"
    fit = neofield("set", "fit", "digits", "--limit", "60", "--steps", "150", "-o", out, *QUICK, "--json")
    assert fit.returncode == 0, fit.stderr
    return root, out, json.loads(fit.stdout)


def test_set_fit_encode_classify_run_end_to_end(digits_set):
    root, backbone, fit = digits_set
    assert fit["items"] == 60 and fit["bytes"] == backbone.stat().st_size and fit["mean_psnr_db"] > 12  # an untrained set scores ~8
    for split in ("train", "test"):
        result = neofield("set", "encode", "digits", "--split", split, "--limit", "40", "-b", backbone,
                          "--steps", "40", "-o", root / f"{split}.safetensors", *QUICK, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["items"] == 40
    result = neofield("set", "classify", root / "train.safetensors", root / "test.safetensors", "--seeds", "2",
                      "--epochs", "5", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert len(scores["per_seed"]) == 2 and 0 <= scores["accuracy_mean"] <= 1 and scores["features"] == 96
    info = neofield("info", backbone)
    assert info.returncode == 0 and "60 signals of this grid over one backbone" in info.stdout


def test_decode_renders_one_signal_of_a_set_at_any_scale(digits_set, tmp_path):
    _, backbone, _ = digits_set
    assert neofield("decode", backbone, "--item", "7", "--scale", "2", "-o", tmp_path / "7.png", "-q").returncode == 0
    picture = iio.imread(tmp_path / "7.png")
    assert picture.shape == (16, 16, 3) and np.array_equal(picture[..., 0], picture[..., 1])
    assert_one_line_error(neofield("decode", backbone, "-o", tmp_path / "x.png"), "pick one with --item")
    assert_one_line_error(neofield("decode", backbone, "--item", "60", "-o", tmp_path / "x.png"),
                          "--item 60 is out of range")
    assert not (tmp_path / "x.png").exists()


def test_set_fit_stores_quantized_weights_and_reports_what_a_decoder_gets(digits_set, tmp_path):
    import torch

    from neofield.sets.data import load_set
    from neofield.sets.fit import load_set_bundle, measure_items, render_items
    from neofield.sets.signals import SetSignal

    _, backbone, fit = digits_set
    assert fit["weights_dtype"] == "quantized" and fit["bits"] == {"backbone": 6.0, "latents": 6.0}  # the default
    field, meta = load_set_bundle(backbone)
    assert meta["quantization"] == {"bits": {"backbone": 6.0, "latents": 6.0}}
    assert "quantized to 6 bits (backbone) and 6 bits (latents)" in neofield("info", backbone).stdout
    # the PSNR printed and recorded is the one of the weights in the file
    signal = SetSignal(load_set("digits", "train", 60))
    psnr = measure_items(field, signal)
    assert fit["mean_psnr_db"] == round(float(psnr.mean()), 3) and fit["min_psnr_db"] == round(float(psnr.min()), 3)
    assert meta["quality"]["mean_psnr_db"] == round(float(psnr.mean()), 4)
    # and `decode --item` renders it as the set does
    assert neofield("decode", backbone, "--item", "9", "-o", tmp_path / "9.png", "-q").returncode == 0
    mine = render_items(field, signal, torch.tensor([9]))[0, :, 0].round().clamp(0, 255).to(torch.uint8)
    assert np.array_equal(iio.imread(tmp_path / "9.png")[..., 0].reshape(-1), mine.numpy())


def test_set_fit_takes_the_bit_depths_and_float_storage_of_encode(tmp_path):
    small = ["digits", "--limit", "8", "--steps", "20", *QUICK, "--json"]
    out = tmp_path / "q.nf"
    fit = neofield("set", "fit", *small, "--bits", "5", "--latent-bits", "8", "-o", out)
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["bits"] == {"backbone": 5.0, "latents": 8.0}
    half = neofield("set", "fit", *small, "--dtype", "float16", "-o", tmp_path / "h.nf")
    assert half.returncode == 0, half.stderr
    assert json.loads(half.stdout)["weights_dtype"] == "float16" and "bits" not in json.loads(half.stdout)
    assert out.stat().st_size < (tmp_path / "h.nf").stat().st_size
    bad = tmp_path / "bad.nf"
    for args, message in ((["--bits", "0"], "--bits must be a bit depth from 1 to 16, not 0"),
                          (["--latent-bits", "17"], "--latent-bits must be a bit depth from 1 to 16, not 17"),
                          (["--dtype", "float16", "--bits", "4"], "--bits apply to --dtype quantized, not float16"),
                          (["--dtype", "int8"], "--dtype must be one of quantized, float16, bfloat16, float32")):
        assert_one_line_error(neofield("set", "fit", "digits", "-o", bad, "--steps", "1", *QUICK, *args), message)
        assert not bad.exists()


def test_set_commands_refuse_bad_input_in_one_line(digits_set, tmp_path):
    _, backbone, _ = digits_set
    assert_one_line_error(neofield("set", "fit", "digits", "-o", backbone, *QUICK), "exists")
    assert_one_line_error(neofield("set", "fit", "digits", "-o", tmp_path / "a.nf", "--latent-optimizer", "sgd",
                                   "--steps", "1", *QUICK), "--latent-optimizer must be one of adam, lazy")
    assert_one_line_error(neofield("set", "fit", tmp_path / "nowhere", "-o", tmp_path / "a.nf", *QUICK),
                          "does not exist")
    assert_one_line_error(neofield("set", "encode", "digits", "-b", tmp_path / "none.nf", "-o",
                                   tmp_path / "r.safetensors", *QUICK), "does not exist")
    assert_one_line_error(neofield("set", "classify", backbone, backbone), "not a safetensors file")
    assert not (tmp_path / "a.nf").exists() and not (tmp_path / "r.safetensors").exists()


def test_a_folder_of_clips_becomes_one_bundle_that_decodes_each_clip(tmp_path):
    from neofield.media import Selection, read_media, write_video

    from conftest import BIKES

    folder = tmp_path / "clips"
    folder.mkdir()
    for k in range(3):
        media = read_media(BIKES, Selection(start=0.2 * k, max_frames=4, resize=(32, 14)))
        write_video(folder / f"c{k}.mp4", iter(media.video), media.fps, lossless=True)
    out = tmp_path / "clips.nf"
    fit = neofield("set", "fit", folder, "--steps", "30", "-o", out, *QUICK, "--json")
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["items"] == 3  # an unlabelled folder is stored whole, no test split taken out
    decoded = neofield("decode", out, "--item", "c2.mp4", "-o", tmp_path / "c2.mp4", "--json")
    assert decoded.returncode == 0, decoded.stderr
    grid = json.loads(decoded.stdout)["grid"]["video"]
    assert (grid["width"], grid["height"], grid["frames"]) == (32, 14, 4)
