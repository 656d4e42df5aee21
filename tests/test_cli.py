"""The command line as a user meets it: real processes, exit codes, one-line errors."""

import json
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
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 7)
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
    assert_one_line_error(neofield("encode", tiny_clip, "--rff-sigma", "1,2", "-o", tmp_path / "r.nf", *FAST),
                          "one per input: x, y, t")
    assert not any(tmp_path.iterdir())


def test_help_and_version():
    assert neofield("--help").returncode == 0
    assert "neofield" in neofield("--version").stdout


def test_info_shows_a_per_axis_sigma_of_a_video_with_sound(tiny_av_clip, tmp_path):
    out = tmp_path / "av.nf"
    assert neofield("encode", tiny_av_clip, "-o", out, *FAST).returncode == 0
    info = neofield("info", out)
    assert info.returncode == 0, info.stderr
    assert "audiovisual" in info.stdout and "sigma 1/1/10" in info.stdout
