"""The command line as a user meets it: real processes, exit codes, one-line errors."""

import json
import re
import subprocess
import sys

import pytest

from neofield import bundle

FAST = ["--steps", "40", "--batch-size", "512", "--device", "cpu", "-q"]


def neofield(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neofield", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(result, message, code=1):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]


@pytest.fixture(scope="module")
def encoded(tiny_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "clip.nf"
    result = neofield("encode", tiny_clip, "-o", out, *FAST, "--json")
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def test_encode_decode_psnr_info_succeed(encoded, tiny_clip, tmp_path):
    out, report = encoded
    assert report["bytes"] == out.stat().st_size
    assert neofield("decode", out, "--scale", "2", "-o", tmp_path / "up.mp4", "-q").returncode == 0
    assert (tmp_path / "up.mp4").stat().st_size > 0
    psnr = neofield("psnr", tiny_clip, out, "--json")
    assert psnr.returncode == 0 and json.loads(psnr.stdout)["video_psnr_db"] == report["quality"]["video_psnr_db"]
    info = neofield("info", out, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["modality"] == "video"
    assert "PSNR" in neofield("psnr", tiny_clip, out).stdout


def test_info_and_psnr_split_the_bytes(encoded, tiny_clip):
    out, report = encoded
    split = json.loads(neofield("info", out, "--json").stdout)["stored_bytes"]
    assert sum(split.values()) == report["bytes"] and min(split.values()) > 0
    assert "(latents, fitted for their rate at lambda 0.06)" in neofield("info", out).stdout  # the default
    scores = json.loads(neofield("psnr", tiny_clip, out, "--json").stdout)
    assert scores["bytes_backbone"] == split["backbone"] and scores["bytes_side"] == split["side"]


def test_bad_bit_depth_is_one_line(tiny_clip, tmp_path):
    assert_one_line_error(neofield("encode", tiny_clip, "-o", tmp_path / "x.nf", "--bits", "0"),
                          "--bits must be a bit depth from 1 to 16")
    assert not (tmp_path / "x.nf").exists()


def test_default_output_name_follows_the_input(encoded, tmp_path):
    out, _ = encoded
    local = tmp_path / "clip.nf"
    local.write_bytes(out.read_bytes())
    assert neofield("decode", local, "-q").returncode == 0
    assert (tmp_path / "clip.decoded.mp4").exists()


def test_missing_input(tmp_path):
    assert_one_line_error(neofield("encode", tmp_path / "nope.mp4", *FAST), "does not exist")


def test_empty_input(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert_one_line_error(neofield("encode", tmp_path / "empty.mp4", *FAST), "is empty")
    assert not (tmp_path / "empty.nf").exists()


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("just some text\n" * 50)
    assert_one_line_error(neofield("encode", tmp_path / "notes.mp4", *FAST), "not a media file")
    assert list(tmp_path.iterdir()) == [tmp_path / "notes.mp4"]


def test_truncated_and_corrupted_bundles(encoded, tmp_path):
    out, _ = encoded
    data = out.read_bytes()
    (tmp_path / "cut.nf").write_bytes(data[: len(data) // 3])
    assert_one_line_error(neofield("decode", tmp_path / "cut.nf", "-o", tmp_path / "x.mp4"), "truncated or corrupted")
    assert not (tmp_path / "x.mp4").exists()
    (tmp_path / "text.nf").write_text("hello")
    assert_one_line_error(neofield("info", tmp_path / "text.nf"), "not a neofield bundle")


def test_newer_bundle_version(encoded, tmp_path, monkeypatch):
    out, _ = encoded
    b = bundle.load(out)
    monkeypatch.setattr(bundle, "FORMAT_VERSION", bundle.FORMAT_VERSION + 1)
    (tmp_path / "future.nf").write_bytes(bundle.pack(b.field, b.meta))
    assert_one_line_error(neofield("decode", tmp_path / "future.nf", "-o", tmp_path / "y.mp4"), "newer")
    assert not (tmp_path / "y.mp4").exists()


def test_psnr_of_unrelated_media(tiny_clip, tiny_sound):
    assert_one_line_error(neofield("psnr", tiny_clip, tiny_sound), "cannot compare video with audio")


def test_existing_output_needs_force(encoded, tmp_path):
    out, _ = encoded
    target = tmp_path / "exists.mp4"
    target.write_bytes(b"keep me")
    assert_one_line_error(neofield("decode", out, "-o", target), "already exists")
    assert target.read_bytes() == b"keep me"
    assert neofield("decode", out, "-o", target, "--force", "-q").returncode == 0
    assert target.read_bytes() != b"keep me"


def test_bad_option_values(encoded, tiny_clip, tmp_path):
    out, _ = encoded
    assert_one_line_error(neofield("decode", out, "--scale", "0", "-o", tmp_path / "z.mp4"), "--scale")
    assert_one_line_error(neofield("decode", out, "-o", tmp_path / "z.txt"), "cannot write .txt")
    assert_one_line_error(neofield("encode", tiny_clip, "--resize", "big", "-o", tmp_path / "r.nf"), "WIDTHxHEIGHT")
    assert_one_line_error(neofield("encode", tiny_clip, "--preset", "huge", "-o", tmp_path / "r.nf", *FAST),
                          "unknown preset")
    assert_one_line_error(neofield("encode", tiny_clip, "--rff-sigma", "1,2", "-o", tmp_path / "r.nf", *FAST,
                                   "--arch", "neomlp"),
                          "one per input: x, y, t")
    assert not any(tmp_path.iterdir())


def test_help_and_version():
    assert neofield("--help").returncode == 0
    assert "neofield" in neofield("--version").stdout


def test_info_shows_a_per_axis_sigma_of_a_video_with_sound(tiny_av_clip, tmp_path):
    out = tmp_path / "av.nf"
    assert neofield("encode", tiny_av_clip, "-o", out, *FAST, "--arch", "neomlp").returncode == 0
    info = neofield("info", out)
    assert info.returncode == 0, info.stderr
    # pictures take the preset's sigma, the shared time axis the sound's spectral centroid
    assert "audiovisual" in info.stdout and re.search(r"sigma 1/1/\d+(\.\d)?\)", info.stdout)
    cost = json.loads(neofield("info", out, "--json").stdout)
    assert cost["macs_per_pixel"] == cost["macs_per_sample"] > 300_000  # ~337 k: every point runs the whole field
    macs = cost["macs_per_pixel"]
    assert f"cost   multiply-adds: {macs:,} per decoded pixel, {macs:,} per decoded sample" in info.stdout


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "--steps must be a whole number >= 1"),
    (["--steps", "-3"], "--steps must be a whole number >= 1"),
    (["--time-budget", "0"], "--time-budget must be > 0"),
    (["--epochs", "inf"], "--epochs must be a finite number"),
    (["--segments", "0"], "--segments must be a whole number >= 1"),
    (["--batch-size", "0"], "--batch-size must be a whole number >= 1"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--audio-share", "2"], "--audio-share must be between 0 and 1"),
    (["--duration", "0"], "--duration must be > 0"),
    (["--start", "nan"], "--start must be a finite number"),
    (["--device", "tpu"], "--device must be auto, cpu, cuda, cuda:N or mps"),
    (["--device", "cuda:1"], "CUDA"),
    (["--device", "mps"], "MPS"),
    (["--latents", "cubic"], "--latents must be nearest or linear"),
    (["--precision", "fp8"], "--precision must be one of auto, float32, bfloat16"),
])
def test_bad_encode_numbers_fail_before_the_media_is_read(tmp_path, args, message):
    # the source does not exist: a check that ran after reading would say so instead
    result = neofield("encode", tmp_path / "missing.mp4", "-o", tmp_path / "x.nf", *args)
    assert_one_line_error(result, message)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args,message", [
    (["--fps", "0"], "--fps must be > 0"),
    (["--scale", "inf"], "--scale must be a finite number"),
    (["--scale", "1000"], "--scale 1000 is too large"),
    (["--start", "nan"], "--start must be a finite number"),
    (["--sample-rate", "0"], "--sample-rate must be a whole number >= 1"),
    (["--size", "0x10"], "--size '0x10' must be positive"),
    (["--size", "20000x20000"], "too large"),
    (["--crf", "-1"], "--crf must be >= 0"),
    (["--crop", "1,2,3"], "--crop '1,2,3' is not of the form X,Y,W,H"),
    (["--crop", "0,0,999,5"], "--crop 0,0,999,5 must lie inside the 32x14 frame"),
    (["--between", "nearest"], "--between must be one of blend, field, not 'nearest'"),
])
def test_bad_decode_numbers_are_one_line_errors(encoded, tmp_path, args, message):
    out, _ = encoded
    assert_one_line_error(neofield("decode", out, "-o", tmp_path / "x.mp4", *args), message)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["--fps", "0"], ["--size", "0x10"], ["--compile", "maybe"], ["--between", "x"]])
def test_bad_decode_numbers_answer_before_torch_is_imported(encoded, tmp_path, args):
    # importing torch is most of a failed command's second: the numbers need no bundle and no torch
    out, _ = encoded
    code = ("import sys; from neofield.cli import run; sys.argv = ['neofield', *sys.argv[1:]]\n"
            "try:\n    run()\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, "decode", str(out), "-o", str(tmp_path / "x.mp4"), *args],
                            capture_output=True, text=True)
    assert result.stdout.split() == ["1", "False"], result.stdout + result.stderr
    assert not any(tmp_path.iterdir())


def test_decode_of_a_clip_to_a_png_asks_for_a_frame_or_a_pattern(encoded, tmp_path):
    out, _ = encoded
    assert_one_line_error(neofield("decode", out, "-o", tmp_path / "f.png"), "--frame SECONDS")
    assert neofield("decode", out, "-o", tmp_path / "f.png", "--frame", "0.05", "-q").returncode == 0
    assert neofield("decode", out, "-o", tmp_path / "seq" / "%03d.png", "-q").returncode == 1  # no such folder
    (tmp_path / "seq").mkdir()
    assert neofield("decode", out, "-o", tmp_path / "seq" / "%03d.png", "-q").returncode == 0
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]


def test_decode_to_standard_output_writes_the_file_there_and_nothing_else(encoded, tmp_path):
    import io

    import av

    out, _ = encoded
    result = subprocess.run([sys.executable, "-m", "neofield", "decode", str(out), "-o", "-", "--format", "mkv",
                             "-q"], capture_output=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with av.open(io.BytesIO(result.stdout)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
    assert not any(tmp_path.iterdir())  # no file named '-'


def test_decode_json_reports_the_grid(encoded, tmp_path):
    out, _ = encoded
    result = neofield("decode", out, "-o", tmp_path / "up.mp4", "--scale", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["grid"]["video"]["width"] == 64 and report["grid"]["video"]["frames"] == 8
    assert report["bytes"] == (tmp_path / "up.mp4").stat().st_size


def test_psnr_of_a_bundle_refuses_a_different_selection_by_name(encoded, tiny_clip):
    out, _ = encoded
    assert_one_line_error(neofield("psnr", tiny_clip, out, "--max-frames", "3"), "a bundle knows its piece")


def test_help_and_version_do_not_import_torch():
    code = "import sys, neofield.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_option_defaults_agree_with_the_fit_loop_and_the_help_states_them():
    from neofield.codec.options import DEFAULT_EPOCHS, DEFAULT_TIME_BUDGET, GRID_EPOCHS, EncodeOptions
    from neofield.fields.registry import BATCHES, MAX_BATCH, POINTS_PER_PARAMETER
    from neofield.fit import DEFAULT_BATCH

    (_, batch), = EncodeOptions.flags(("batch_size",))  # stated there so that --help needs no torch
    assert f"{DEFAULT_BATCH:,};" in batch.help and f"{BATCHES['neogrid']:,} for" in batch.help
    assert f"a {round(1 / POINTS_PER_PARAMETER)}nd of their parameters" in batch.help
    assert f"{MAX_BATCH:,}]" in batch.help
    (_, epochs), = EncodeOptions.flags(("epochs",))
    assert f"{GRID_EPOCHS:g} for the latent-grid fields, {DEFAULT_EPOCHS:g} for" in epochs.help
    assert f"{DEFAULT_TIME_BUDGET / 60:g} minutes" in epochs.help


def test_errors_are_not_wrapped_in_logs(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4)
    deep.mkdir()
    assert_one_line_error(neofield("encode", deep / "missing-clip-with-a-long-name.mp4"), "does not exist")


def test_info_prints_names_from_the_file_verbatim(encoded, tmp_path):
    out, _ = encoded
    b = bundle.load(out)
    meta = {**b.meta, "source": {**b.meta["source"], "name": "[/]evil[bold]name"}}
    (tmp_path / "odd.nf").write_bytes(bundle.pack(b.field, meta))
    info = neofield("info", tmp_path / "odd.nf")
    assert info.returncode == 0, info.stderr
    assert "[/]evil[bold]name" in info.stdout


def test_a_terminated_decode_leaves_no_partial_file(encoded, tmp_path):
    import signal
    import time

    out, _ = encoded
    proc = subprocess.Popen([sys.executable, "-m", "neofield", "decode", str(out), "--scale", "12", "-o",
                             str(tmp_path / "big.mp4"), "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(tmp_path.iterdir()) and time.monotonic() < deadline:  # wait until the output is being written
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr
    assert not any(tmp_path.iterdir())


def test_encode_arch_siren_writes_a_bundle_that_info_describes(tiny_clip, tmp_path):
    out = tmp_path / "siren.nf"
    r = neofield("encode", tiny_clip, "-o", out, "--arch", "siren", "--steps", "20", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert re.search(r"model\s+siren 5 layers of width \d+", r.stderr)
    info = neofield("info", out)
    assert info.returncode == 0 and re.search(r"model  SIREN: 5 layers of width \d+, w0 30", info.stdout), info.stdout
    assert_one_line_error(neofield("encode", tiny_clip, "-o", tmp_path / "x.nf", "--arch", "mlp"),
                          "--arch must be one of neomlp, siren, spder, rffnet, grid, neogrid, not 'mlp'")


def test_encode_with_a_rate_term_writes_a_bundle_that_info_describes(tiny_clip, tmp_path):
    out = tmp_path / "rated.nf"
    r = neofield("encode", tiny_clip, "-o", out, "--lambda", "0.05", *FAST)
    assert r.returncode == 0, r.stderr
    given = neofield("encode", tiny_clip, "-o", tmp_path / "given.nf", "--lambda", "0.05", "--steps", "5")
    assert re.search(r"rate\s+the latents fitted for their own rate at lambda 0.05\n", given.stderr), given.stderr
    default = neofield("encode", tiny_clip, "-o", tmp_path / "default.nf", "--steps", "5")
    assert "at lambda 0.06 (the default; --lambda, --size" in default.stderr, default.stderr
    info = neofield("info", out)
    assert info.returncode == 0 and "at a step of 0.2 (latents, fitted for their rate at lambda 0.05)" in info.stdout
    assert_one_line_error(neofield("encode", tiny_clip, "-o", tmp_path / "x.nf", "--lambda", "0.05", "--size", "9KB"),
                          "give --lambda or --size, not both")
    assert not (tmp_path / "x.nf").exists()
