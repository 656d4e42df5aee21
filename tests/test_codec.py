"""The Python API end to end: encode -> bundle -> decode/psnr, on real media pieces."""

import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

import neofield
from neofield.codec import check_cost
from neofield.errors import NeofieldError
from neofield.schema import Limits
from neofield.media import read_media
from neofield.metrics import video_psnr
from tests.conftest import BBB, BIKES

FAST = dict(steps=120, batch_size=1024, device="cpu")


@pytest.fixture(scope="module")
def video_bundle(tiny_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "tiny.nf"
    report = neofield.encode(tiny_clip, out, **FAST)
    return tiny_clip, out, report


def test_encode_writes_a_bundle_smaller_than_the_raw_frames_would_suggest(video_bundle):
    _, out, report = video_bundle
    assert out.stat().st_size == report.bytes
    assert report.quality["video_psnr_db"] > 15
    assert neofield.load(out).kind == "video"


def test_psnr_of_the_bundle_equals_what_the_encoder_measured(video_bundle):
    clip, out, report = video_bundle
    assert neofield.psnr(clip, out)["video_psnr_db"] == report.quality["video_psnr_db"]


def test_decode_at_scale_one_reproduces_the_training_grid_and_the_psnr(video_bundle, tmp_path):
    clip, out, report = video_bundle
    decoded = neofield.decode(out, tmp_path / "same.mp4", lossless=True).path
    assert read_media(decoded).video.shape == read_media(clip).video.shape
    # the mp4 is lossless RGB, so the file scores exactly what the bundle does
    assert neofield.psnr(clip, decoded)["video_psnr_db"] == report.quality["video_psnr_db"]


def test_decode_at_scale_two_doubles_width_height_and_frames(video_bundle, tmp_path):
    clip, out, _ = video_bundle
    f, h, w, _ = read_media(clip).video.shape
    up = read_media(neofield.decode(out, tmp_path / "up.mp4", scale=2).path)
    assert up.video.shape == (2 * f, 2 * h, 2 * w, 3) and up.fps == 50


def test_decode_size_fps_and_time_range(video_bundle, tmp_path):
    _, out, _ = video_bundle
    media = read_media(neofield.decode(out, tmp_path / "part.mkv", size=(20, 10), fps=50, start=0.04, end=0.12).path)
    assert media.video.shape == (4, 10, 20, 3)


def test_decode_to_png_writes_the_frame_asked_for(video_bundle, tmp_path):
    _, out, _ = video_bundle
    still = read_media(neofield.decode(out, tmp_path / "f.png", frame=0.1).path).video
    whole = read_media(neofield.decode(out, tmp_path / "all.mkv", lossless=True).path).video
    assert np.array_equal(still[0], whole[2])  # 0.1 s is the centre of frame 2 at 25 fps


def test_existing_output_is_kept_without_force(video_bundle, tmp_path):
    clip, out, _ = video_bundle
    target = tmp_path / "keep.nf"
    target.write_bytes(b"precious")
    with pytest.raises(NeofieldError, match="already exists"):
        neofield.encode(clip, target, **FAST)
    assert target.read_bytes() == b"precious"


def test_audio_encode_decode_at_double_rate(tiny_sound, tmp_path):
    report = neofield.encode(tiny_sound, tmp_path / "s.nf", steps=150, batch_size=512, device="cpu")
    assert report.kind == "audio" and "audio_psnr_db" in report.quality
    up = read_media(neofield.decode(tmp_path / "s.nf", tmp_path / "up.flac", scale=2).path)
    original = read_media(tiny_sound)
    assert up.sample_rate == 2 * original.sample_rate and len(up.audio) == 2 * len(original.audio)
    with pytest.raises(NeofieldError, match="sound only"):
        neofield.decode(tmp_path / "s.nf", tmp_path / "x.wav", size=(10, 10))
    same = neofield.decode(tmp_path / "s.nf", tmp_path / "same.wav").path
    assert neofield.psnr(tiny_sound, same)["audio_psnr_db"] == pytest.approx(report.quality["audio_psnr_db"],
                                                                               abs=1e-3)


def test_video_with_sound_is_one_field_decoded_to_both_streams(tiny_av_clip, tmp_path):
    report = neofield.encode(tiny_av_clip, tmp_path / "av.nf", steps=60, batch_size=1024, device="cpu")
    assert report.kind == "audiovisual"
    assert neofield.load(tmp_path / "av.nf").field.config.out_features == 3 + 6
    out = neofield.decode(tmp_path / "av.nf", tmp_path / "av.mp4", scale=2, lossless=True).path
    with av.open(str(out)) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
        assert c.streams.audio[0].channels == 6 and c.streams.audio[0].rate == 96000
    scores = neofield.psnr(tiny_av_clip, tmp_path / "av.nf")
    assert set(scores) >= {"video_psnr_db", "audio_psnr_db", "bytes", "compression_ratio"}
    sound = read_media(neofield.decode(tmp_path / "av.nf", tmp_path / "av.wav").path)
    assert sound.kind == "audio" and sound.audio.shape[1] == 6


def test_a_bundle_decodes_to_the_same_bytes_whatever_the_thread_count(tiny_av_clip, tmp_path):
    """Lossless pictures with FLAC in Matroska, and float WAV: two processes, 1 and 2 threads, one file."""
    neofield.encode(tiny_av_clip, tmp_path / "av.nf", steps=30, batch_size=1024, device="cpu")
    outputs = {}
    for threads in ("1", "2"):
        for suffix, extra in ((".mkv", ["--lossless"]), (".wav", [])):
            out = tmp_path / f"t{threads}{suffix}"
            done = subprocess.run([sys.executable, "-m", "neofield", "decode", str(tmp_path / "av.nf"), "-o", str(out),
                                   "--scale", "2", *extra], capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "OMP_NUM_THREADS": threads})
            assert done.returncode == 0, done.stderr
            outputs.setdefault(suffix, []).append(out.read_bytes())
    assert all(a == b for a, b in outputs.values())


def test_psnr_refuses_an_original_the_bundle_was_not_made_from(video_bundle, tiny_av_clip):
    _, out, _ = video_bundle
    with pytest.raises(NeofieldError, match="is not the media"):
        neofield.psnr(tiny_av_clip, out)


def test_psnr_refuses_media_of_another_grid(tiny_clip, tiny_av_clip):
    with pytest.raises(NeofieldError, match="differ"):
        neofield.psnr(tiny_clip, tiny_av_clip)


def test_still_image_encodes_and_decodes_at_double_size(tmp_path):
    from neofield.media import write_image

    image = read_media(BBB, neofield.Selection(max_frames=1, resize=(24, 16))).video[0]
    write_image(tmp_path / "still.png", image)
    report = neofield.encode(tmp_path / "still.png", tmp_path / "still.nf", steps=100, batch_size=384, device="cpu")
    assert report.kind == "image"
    up = read_media(neofield.decode(tmp_path / "still.nf", scale=2).path)
    assert up.kind == "image" and up.video.shape == (1, 32, 48, 3)


@pytest.fixture(scope="module")
def uneven_av_clip(tmp_path_factory):
    """3 frames (0.12 s) of Big Buck Bunny at 16x10 with 0.2 s of its sound: the
    sound runs on past the last frame, as it does in the whole bigbuckbunny.mp4."""
    from neofield.media import write_video

    media = read_media(BBB, neofield.Selection(duration=0.12, resize=(16, 10)))
    sound = read_media(BBB, neofield.Selection(duration=0.2)).audio
    path = tmp_path_factory.mktemp("media") / "uneven.mkv"
    write_video(path, iter(media.video), media.fps, sound, media.sample_rate, lossless=True)
    return path


def test_streams_of_unequal_length_encode_and_decode_to_their_own_lengths(uneven_av_clip, tmp_path):
    original = read_media(uneven_av_clip)
    assert len(original.video) == 3 and len(original.audio) == 9600
    neofield.encode(uneven_av_clip, tmp_path / "u.nf", steps=20, batch_size=512, device="cpu")
    back = read_media(neofield.decode(tmp_path / "u.nf", tmp_path / "u.mkv", lossless=True).path)
    assert back.video.shape == original.video.shape and len(back.audio) == len(original.audio)
    assert set(neofield.psnr(uneven_av_clip, tmp_path / "u.nf")) >= {"video_psnr_db", "audio_psnr_db"}


def test_a_start_inside_streams_of_unequal_length(uneven_av_clip, tmp_path):
    report = neofield.encode(uneven_av_clip, tmp_path / "s.nf", selection=neofield.Selection(start=0.1), steps=10,
                             batch_size=256, device="cpu")
    geo = neofield.load(tmp_path / "s.nf").meta["geometry"]
    assert geo["video"]["frames"] == 1 and geo["audio"]["samples"] == 4800
    assert "audio_snr_db" in report.quality


def test_no_budget_means_the_default_budget(tiny_clip, tmp_path):
    report = neofield.encode(tiny_clip, tmp_path / "d.nf", batch_size=256, device="cpu", compile_mode="off")
    assert report.budget == {"steps": None, "epochs": 150.0, "time_budget": 300.0, "default": True}
    points = 4 * 14 * 32
    assert report.fit.steps == -(-150 * points // 256)  # 150 epochs of the default field, well inside 5 minutes


def test_a_lossy_decode_is_playable_and_psnr_tells_its_loss_from_the_fields(video_bundle, tmp_path):
    clip, out, report = video_bundle
    decoded = neofield.decode(out, tmp_path / "play.mp4").path
    with av.open(str(decoded)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    scores = neofield.psnr(clip, decoded)  # no selection options: the file's tag carries them
    assert scores["field_video_psnr_db"] == report.quality["video_psnr_db"]
    assert scores["video_output_loss_db"] == pytest.approx(scores["field_video_psnr_db"] - scores["video_psnr_db"])


def test_psnr_of_a_decoded_file_takes_the_encodes_selection(tmp_path):
    from tests.conftest import BIKES

    sel = neofield.Selection(max_frames=3, resize=(24, 10))
    neofield.encode(BIKES, tmp_path / "b.nf", selection=sel, steps=10, batch_size=256, device="cpu")
    decoded = neofield.decode(tmp_path / "b.nf", tmp_path / "b.mkv", lossless=True).path
    assert neofield.psnr(BIKES, decoded)["video_psnr_db"] == neofield.psnr(BIKES, tmp_path / "b.nf")["video_psnr_db"]


def test_the_encoders_check_of_a_large_clip_is_bounded_to_evenly_spaced_frames(tiny_clip, monkeypatch):
    from neofield.codec import make_field, measure
    from neofield.signal import Signal

    signal = Signal(read_media(tiny_clip))
    field = make_field(signal, "tiny", segments=4)
    full = measure(field, signal)
    assert "video_frames_measured" not in full
    # a fit this slow could afford 2 frames of 32x14 in the measuring time: the floor is 8 frames, and
    # this clip has only 4, so all of them are measured
    part = measure(field, signal, points_per_second=2 * 32 * 14 / neofield.codec.quality.MEASURE_SECONDS)
    assert part == full
    monkeypatch.setattr(neofield.codec.quality, "MEASURE_MIN_FRAMES", 2)
    part = measure(field, signal, points_per_second=2 * 32 * 14 / neofield.codec.quality.MEASURE_SECONDS)
    assert part["video_frames_measured"] == 2
    frames = read_media(tiny_clip).video
    from neofield.metrics import video_psnr
    from neofield.render import render_media

    rendered = render_media(field, signal.layout()).video
    assert part["video_psnr_db"] == pytest.approx(video_psnr(frames[[0, 3]], rendered[[0, 3]]), abs=1e-4)


def test_pixel_aspect_ratio_survives_encode_and_decode(tmp_path):
    from fractions import Fraction

    from neofield.media import write_video

    frames = read_media(BBB, neofield.Selection(max_frames=2, resize=(16, 10))).video
    write_video(tmp_path / "sar.mp4", iter(frames), 25.0, sample_aspect_ratio=(4, 3), lossless=True)
    neofield.encode(tmp_path / "sar.mp4", tmp_path / "sar.nf", steps=5, batch_size=128, device="cpu")
    assert neofield.load(tmp_path / "sar.nf").meta["geometry"]["video"]["sample_aspect_ratio"] == [4, 3]
    report = neofield.decode(tmp_path / "sar.nf", tmp_path / "back.mp4")
    with av.open(str(report.path)) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(4, 3)
    assert not report.notes
    assert "pixel aspect ratio" in neofield.decode(tmp_path / "sar.nf", tmp_path / "back.webm").notes[0]


def test_a_quantized_bundle_is_smaller_and_scores_what_the_encoder_measured(tiny_clip, tmp_path):
    half = neofield.encode(tiny_clip, tmp_path / "f16.nf", steps=60, batch_size=512, device="cpu",
                           weights_dtype="float16")
    q = neofield.encode(tiny_clip, tmp_path / "q.nf", steps=60, batch_size=512, device="cpu",
                        bits=neofield.BitDepths(6, 6))  # the field float16 stores, at fixed depths
    assert q.bytes < 0.5 * half.bytes
    assert abs(q.quality["video_psnr_db"] - half.quality["video_psnr_db"]) < 0.5
    assert neofield.psnr(tiny_clip, tmp_path / "q.nf")["video_psnr_db"] == q.quality["video_psnr_db"]
    meta = neofield.load(tmp_path / "q.nf").meta
    assert meta["weights_dtype"] == "quantized" and meta["quantization"]["bits"] == {"backbone": 6.0, "latents": 6.0}
    assert meta["fit"]["config"]["quantization_aware"] == {"fraction": 0.1, "mode": "round"}


def test_bits_set_the_size(tiny_clip, tmp_path):
    low = neofield.encode(tiny_clip, tmp_path / "low.nf", steps=20, batch_size=256, device="cpu",
                          bits=neofield.BitDepths(4, 4))
    high = neofield.encode(tiny_clip, tmp_path / "high.nf", steps=20, batch_size=256, device="cpu",
                           bits=neofield.BitDepths(8, 8))
    assert low.bytes < 0.75 * high.bytes


def test_bits_with_a_float_dtype_are_refused(tiny_clip, tmp_path):
    with pytest.raises(NeofieldError, match="--bits"):
        neofield.encode(tiny_clip, tmp_path / "x.nf", steps=2, weights_dtype="float16", bits=neofield.BitDepths())


def test_the_sound_axis_sigma_follows_the_spectrum_unless_given(tiny_av_clip, tiny_sound):
    from neofield.codec import make_field
    from neofield.signal import Signal, audio_rff_sigma

    av_signal = Signal(read_media(tiny_av_clip))
    sigma = make_field(av_signal, "tiny", 2).config.rff_sigma
    expected = audio_rff_sigma(av_signal.media.audio, av_signal.sample_rate)
    assert sigma == (1.0, 1.0, pytest.approx(expected)) and expected != 10.0
    sound = Signal(read_media(tiny_sound))
    assert make_field(sound, "small", 2).config.rff_sigma == pytest.approx(
        audio_rff_sigma(sound.media.audio, sound.sample_rate))
    assert make_field(sound, "small", 2, rff_sigma=7.0).config.rff_sigma == 7.0


@pytest.mark.parametrize("limits,message", [
    # scale 2: 32x14 pixels; twice the frame rate, whose frames are blends of the 16 fitted ones, each rendered once
    (Limits(decode_points=100), "would evaluate the field at 7,168 points, more than the 100 allowed"),
    (Limits(decode_bytes=1000), "would hold 0.0 GiB at once"),
    (Limits(decode_seconds=1e-6), r"would take about \d+ s on this machine"),
])
def test_a_decode_beyond_the_limits_is_refused_before_rendering(video_bundle, tmp_path, limits, message):
    _, bundle, _ = video_bundle
    out = tmp_path / "big.mp4"
    with pytest.raises(NeofieldError, match=message):
        neofield.decode(bundle, out, scale=2, limits=limits)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_16k_decode_is_refused_for_its_memory_and_allowed_large_passes_the_check(video_bundle, tmp_path):
    from neofield.render import DecodePlan, VideoGrid, decode_cost

    _, bundle, _ = video_bundle
    with pytest.raises(NeofieldError, match=r"would hold 3\.0 GiB at once .*; --allow-large raises the limits$"):
        neofield.decode(bundle, tmp_path / "huge.mp4", size=(16384, 16384))
    cost = decode_cost(DecodePlan(VideoGrid(16384, 16384, 1, 25.0), None), 0, 300_000.0)
    check_cost(cost, Limits.large())  # within sixteen times the limits


def test_decode_reports_its_cost_and_progress_in_points(video_bundle, tmp_path):
    _, bundle, _ = video_bundle
    seen, plans = [], []
    report = neofield.decode(bundle, tmp_path / "x2.mp4", scale=2, on_plan=plans.append,
                             on_progress=lambda done, total: seen.append((done, total)))
    assert plans[0].points == report.plan.points == seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    cost = report.to_dict()["cost"]
    assert cost["points"] == report.plan.points and cost["estimated_seconds"] >= 0 and not cost["compiled"]


def test_psnr_refuses_a_bundle_whose_geometry_disagrees_with_its_source(video_bundle, tmp_path):
    import json

    import safetensors.torch
    import zstandard

    from neofield.bundle import decompress

    clip, bundle, _ = video_bundle
    payload = decompress(bundle.read_bytes())
    meta = json.loads(json.loads(payload[8:8 + int.from_bytes(payload[:8], "little")])["__metadata__"]["neofield"])
    meta["geometry"]["video"]["frames"] = 4000  # would have psnr render 1,000 times the clip
    evil = tmp_path / "evil.nf"
    evil.write_bytes(zstandard.ZstdCompressor().compress(
        safetensors.torch.save(safetensors.torch.load(payload), {"neofield": json.dumps(meta)})))
    with pytest.raises(NeofieldError, match="evil.nf: its geometry does not match the piece of .* damaged"):
        neofield.psnr(clip, evil)


@pytest.mark.parametrize("arch", ["siren", "spder", "rffnet"])
def test_a_baseline_encodes_decodes_and_scores_through_the_same_paths(tiny_clip, tmp_path, arch):
    from neofield.fields.registry import arch_of

    out = tmp_path / f"{arch}.nf"
    report = neofield.encode(tiny_clip, out, arch=arch, **FAST)
    neo = neofield.encode(tiny_clip, tmp_path / "neo.nf", arch="neomlp", **FAST)  # what they stand in for
    b = neofield.load(out)
    assert arch_of(b.field) == arch and b.meta["model"]["type"] == arch
    assert abs(report.parameters["total"] / neo.parameters["total"] - 1) < 0.05  # parameter-matched
    assert report.quality["video_psnr_db"] > 15
    decoded = neofield.decode(out, tmp_path / f"{arch}_x2.mp4", scale=2)
    assert (decoded.plan.video.width, decoded.plan.video.frames) == (64, 8)
    assert neofield.psnr(tiny_clip, out)["video_psnr_db"] == pytest.approx(report.quality["video_psnr_db"], abs=1e-3)
    # "auto" precision is bfloat16 for NeoMLP here, but float32 for the sine networks (w0 = 30 needs the digits)
    assert b.meta["fit"]["config"].get("precision") == ("float32" if arch in ("siren", "spder") else None)


def test_a_size_target_with_a_baseline_is_refused(tiny_clip, tmp_path):
    with pytest.raises(NeofieldError, match="--size sizes a NeoMLP or a latent-grid field; with --arch siren, give --bits instead"):
        neofield.encode(tiny_clip, tmp_path / "a.nf", arch="siren", size="20KB", **FAST)
    with pytest.raises(NeofieldError, match="--arch must be one of neomlp, siren, spder, rffnet"):
        neofield.encode(tiny_clip, tmp_path / "a.nf", arch="mlp", **FAST)


@pytest.mark.parametrize("arch", ["neogrid", "grid"])
def test_a_latent_grid_field_encodes_decodes_at_scale_two_and_scores_what_it_measured(tiny_clip, tmp_path, arch):
    from neofield.fields.registry import arch_of

    out = tmp_path / f"{arch}.nf"
    report = neofield.encode(tiny_clip, out, arch=arch, steps=150, device="cpu")
    b = neofield.load(out)
    assert arch_of(b.field) == arch and b.meta["fit"]["config"]["batch_size"] == 4096  # the grids' batch
    # neogrid's default lambda sizes the field at half a parameter a point: 601 parameters on this clip
    assert report.quality["video_psnr_db"] > (18 if arch == "neogrid" else 20)
    decoded = neofield.decode(out, tmp_path / f"{arch}_x2.mp4", scale=2)
    assert (decoded.plan.video.width, decoded.plan.video.height, decoded.plan.video.frames) == (64, 28, 8)
    assert neofield.psnr(tiny_clip, out)["video_psnr_db"] == pytest.approx(report.quality["video_psnr_db"], abs=1e-3)


def test_neogrid_fits_sound_and_video_with_sound_through_the_same_paths(tiny_sound, tiny_av_clip, tmp_path):
    sound = neofield.encode(tiny_sound, tmp_path / "s.nf", arch="neogrid", steps=150, device="cpu")
    assert sound.quality["audio_psnr_db"] > 20
    up = read_media(neofield.decode(tmp_path / "s.nf", tmp_path / "up.wav", scale=2).path)
    assert len(up.audio) == 2 * len(read_media(tiny_sound).audio)
    both = neofield.encode(tiny_av_clip, tmp_path / "av.nf", arch="neogrid", steps=60, device="cpu")
    layout = neofield.load(tmp_path / "av.nf").field.layout
    assert [p.axes for p in layout.pyramids] == [(0, 1, 2), (2,)]  # the pictures' pyramid and the sound's
    assert both.quality["audio_psnr_db"] > 0 and both.quality["video_psnr_db"] > 10


def test_a_size_target_sizes_a_grid_field_by_its_parameters(tmp_path):  # neogrid steers lambda (test_rate.py)
    from neofield.media import Selection
    from neofield.rate import PARAMETERS

    clip = tmp_path / "clip.mp4"
    media = read_media(BIKES, Selection(max_frames=8, resize=(80, 34)))
    neofield.media.write_video(clip, iter(media.video), media.fps, lossless=True)
    small = neofield.encode(clip, tmp_path / "s.nf", arch="grid", size="4KB", steps=60, device="cpu")
    large = neofield.encode(clip, tmp_path / "l.nf", arch="grid", size="16KB", steps=60, device="cpu")
    assert small.target["width"] in PARAMETERS and small.target["width"] < large.target["width"]
    assert abs(small.bytes / 4_000 - 1) <= 0.10 and abs(large.bytes / 16_000 - 1) <= 0.10, (small.target, large.target)


def test_a_crop_renders_its_window_of_the_frames_pixel_for_pixel(video_bundle, tmp_path):
    clip, bundle, _ = video_bundle
    whole = neofield.decode(bundle, tmp_path / "whole.mp4", scale=2, lossless=True)
    part = neofield.decode(bundle, tmp_path / "part.mp4", scale=2, crop=(10, 4, 30, 16), lossless=True)
    assert (part.plan.video.width, part.plan.video.height) == (30, 16) and part.plan.points * 64 * 28 == \
        whole.plan.points * 30 * 16  # the cost is the window's area
    a, b = read_media(whole.path).video, read_media(part.path).video
    assert np.abs(a[:, 4:20, 10:40].astype(int) - b.astype(int)).max() <= 1  # the same pixels, up to rounding


def test_psnr_of_a_crop_at_the_original_size_scores_the_same_window_of_the_original(video_bundle, tmp_path):
    clip, bundle, report = video_bundle
    part = neofield.decode(bundle, tmp_path / "part.mp4", crop=(0, 0, 16, 14), lossless=True)
    assert (part.plan.video.width, part.plan.video.height) == (16, 14)
    window = read_media(clip).video[:, :14, :16]  # the original's window, not all of it
    assert neofield.psnr(clip, part.path)["video_psnr_db"] == pytest.approx(
        video_psnr(window, read_media(part.path).video), abs=1e-3)


@pytest.mark.parametrize("crop, message", [((30, 0, 10, 10), "--crop 30,0,10,10 must lie inside the 32x14 frame"),
                                           ((0, 0, 0, 5), "W and H at least 1")])
def test_a_crop_outside_the_frame_is_one_clear_error(video_bundle, tmp_path, crop, message):
    with pytest.raises(NeofieldError, match=message):
        neofield.decode(video_bundle[1], tmp_path / "x.mp4", crop=crop)
    assert not (tmp_path / "x.mp4").exists()


def test_a_rate_term_writes_latents_at_its_step_and_says_so(tiny_clip, tmp_path):
    from neofield.latent_rate import LATENT_STEP

    out = tmp_path / "rated.nf"
    report = neofield.encode(tiny_clip, out, rate_lambda=0.05, **{**FAST, "batch_size": 512})
    loaded = neofield.load(out)
    assert loaded.meta["format_version"] == 8  # its latents coded in blocks, in context where it pays
    assert loaded.meta["quantization"] == {"bits": {"backbone": 6.0}, "lambda": 0.05, "latent_step": LATENT_STEP}
    assert loaded.meta["fit"]["config"]["rate"] == {"lambda": 0.05, "step": LATENT_STEP}
    steps = loaded.field.latents.table.detach() / LATENT_STEP
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert neofield.psnr(tiny_clip, out)["video_psnr_db"] == pytest.approx(report.quality["video_psnr_db"], abs=0.01)
    # the finest level keeps its taps only where its latents are in use (all at 0, its taps would read nothing)
    first, end = loaded.field.layout.spans()[loaded.field.layout.pyramids[0].levels - 1]
    in_use = bool(loaded.field.latents.table.detach()[first:end].abs().sum() > 0)
    assert loaded.field.layout.pyramids[0].taps == (1 if in_use else 0)


def test_a_fixed_lambda_fits_a_field_its_budget_sizes_unless_a_preset_is_asked_for(tiny_clip, tmp_path):
    from neofield import rate
    from neofield.codec.build import neogrid_field
    from neofield.signal import Signal

    sized = neofield.encode(tiny_clip, tmp_path / "sized.nf", rate_lambda=0.05, **FAST)
    signal = Signal(read_media(tiny_clip))
    rung = rate.steered_parameters(None, signal.n_points)  # half a parameter a point, as the ladder has it
    assert sized.parameters["total"] == neogrid_field(signal, rung).num_parameters()["total"]
    preset = neofield.encode(tiny_clip, tmp_path / "preset.nf", rate_lambda=0.05, preset="tiny", **FAST)
    plain = neofield.encode(tiny_clip, tmp_path / "plain.nf", bits=neofield.BitDepths(6, 6), **FAST)  # no rate term
    assert preset.parameters["total"] == plain.parameters["total"] != sized.parameters["total"]


def test_a_video_grids_default_batch_follows_its_size_and_a_given_batch_is_kept(tiny_clip, tmp_path, monkeypatch):
    from neofield.fields import registry

    monkeypatch.setattr(registry, "POINTS_PER_PARAMETER", 2.0)  # so that a tiny field's batch grows too
    grown = neofield.encode(tiny_clip, tmp_path / "g.nf", steps=3, device="cpu", evaluate=False,
                            bits=neofield.BitDepths(6, 6))  # the preset's size: more parameters than points
    batch = neofield.load(grown.path).meta["fit"]["config"]["batch_size"]
    grown_batch = registry.batch_for("neogrid", "video", grown.parameters["total"], 0)
    assert batch == grown_batch > registry.BATCHES["neogrid"]
    kept = neofield.encode(tiny_clip, tmp_path / "k.nf", steps=3, device="cpu", batch_size=300, evaluate=False)
    assert neofield.load(kept.path).meta["fit"]["config"]["batch_size"] == 300


def test_a_latent_grid_is_fitted_with_a_shorter_adam_memory_than_a_network(tiny_clip):
    from neofield.codec.encoder import fit_config, resolve
    from neofield.codec.options import EncodeOptions
    from neofield.signal import Signal

    signal = Signal(read_media(tiny_clip))
    beta2 = {arch: fit_config(resolve(EncodeOptions(arch=arch, steps=1), signal)).adam_beta2
             for arch in ("neogrid", "grid", "neomlp", "siren")}
    assert beta2 == {"neogrid": 0.99, "grid": 0.99, "neomlp": 0.999, "siren": 0.999}


def test_a_sound_at_a_fixed_lambda_stores_its_latents_at_sounds_finer_step(tiny_sound, tmp_path):
    from neofield import operating_point

    neofield.encode(tiny_sound, tmp_path / "s.nf", rate_lambda=0.001, steps=60, batch_size=512, device="cpu")
    q = neofield.load(tmp_path / "s.nf").meta["quantization"]
    assert (q["lambda"], q["latent_step"]) == (0.001, operating_point.FIXED_STEPS["audio"]) and q["latent_step"] < 0.2


def test_a_fit_under_a_rate_term_planned_past_its_tuned_steps_starts_lower_and_one_without_does_not(
        tiny_clip, tmp_path, monkeypatch):
    from neofield.fields import registry

    monkeypatch.setitem(registry.LR_STEPS, "neogrid", 10)  # the tiny fit's 40 steps: four times as many
    rates = {}
    for name, options in (("priced", {"rate_lambda": 0.05}), ("plain", {"bits": neofield.BitDepths(6, 6)})):
        seen = []
        neofield.encode(tiny_clip, tmp_path / f"{name}.nf", steps=40, batch_size=256, device="cpu", evaluate=False,
                        callback=lambda p: seen.append(p.lr), **options)
        rates[name] = max(seen)
    lr = registry.RATES["neogrid"][0]
    assert rates["priced"] == pytest.approx(lr / 4, rel=0.01)  # warmed up to a quarter, never past it
    assert rates["plain"] == pytest.approx(lr, rel=0.01)


def test_a_video_at_a_low_fixed_lambda_stores_its_latents_at_the_finer_step_that_lambda_gets(tiny_clip, tmp_path):
    from neofield import operating_point

    neofield.encode(tiny_clip, tmp_path / "v.nf", rate_lambda=0.0003, steps=5, batch_size=256, device="cpu",
                    evaluate=False)
    stored = neofield.load(tmp_path / "v.nf")
    q = stored.meta["quantization"]
    per_point = stored.field.latents.table.numel() / (4 * 14 * 32)  # the tiny clip's frames x height x width
    assert (q["lambda"], q["latent_step"]) == (0.0003, operating_point.fixed_step("video", 0.0003, per_point))
    assert q["latent_step"] < operating_point.LATENT_STEP


def test_a_video_at_a_fixed_lambda_stores_its_backbone_at_the_depth_its_bytes_pay_for(tiny_clip, tmp_path,
                                                                                      monkeypatch):
    from neofield import operating_point

    monkeypatch.setitem(operating_point.FINE_BACKBONE_SHARES, "video", 1.0)  # a tiny lambda: the tiny clip pays for 8
    report = neofield.encode(tiny_clip, tmp_path / "v.nf", rate_lambda=1e-5, steps=30, batch_size=256,
                             device="cpu")
    stored = neofield.load(tmp_path / "v.nf")
    assert stored.meta["quantization"]["bits"] == {"backbone": operating_point.FINE_BACKBONE_BITS}
    assert stored.meta["fit"]["config"]["quantization_aware"]["mode"] == "round"
    assert neofield.psnr(tiny_clip, tmp_path / "v.nf")["video_psnr_db"] == report.quality["video_psnr_db"]
    monkeypatch.setitem(operating_point.FINE_BACKBONE_SHARES, "video", 0.0)
    neofield.encode(tiny_clip, tmp_path / "w.nf", rate_lambda=1e-5, steps=30, batch_size=256, device="cpu",
                    evaluate=False)
    assert neofield.load(tmp_path / "w.nf").meta["quantization"]["bits"] == {"backbone": 6.0}
    assert (tmp_path / "w.nf").stat().st_size < (tmp_path / "v.nf").stat().st_size  # 2 bits a weight fewer


def test_an_encode_naming_no_operating_point_fits_at_its_kinds_default_lambda_and_bits_keep_fixed_depths(
        tiny_clip, tiny_sound, tmp_path):
    from neofield import operating_point

    def quantization(source, name, **kw) -> dict:
        neofield.encode(source, tmp_path / name, steps=5, batch_size=256, device="cpu", evaluate=False, **kw)
        return neofield.load(tmp_path / name).meta["quantization"]

    assert quantization(tiny_clip, "v.nf")["lambda"] == operating_point.DEFAULT_LAMBDAS["video"] == 0.06
    sound = quantization(tiny_sound, "s.nf")
    assert (sound["lambda"], sound["latent_step"]) == (operating_point.DEFAULT_LAMBDAS["audio"],
                                                       operating_point.FIXED_STEPS["audio"])
    fixed = quantization(tiny_clip, "b.nf", bits=neofield.BitDepths(6, 6))  # the latents at 6 bits, no rate term
    assert fixed["bits"] == {"backbone": 6.0, "latents": 6.0} and "lambda" not in fixed
    assert "lambda" not in quantization(tiny_clip, "g.nf", arch="grid")  # the rate term prices neogrid's latents


def test_neogrid_takes_eight_hidden_tokens_where_there_is_sound_and_two_for_pictures_alone():
    from neofield.codec.build import neogrid_field
    from neofield.media import Media
    from neofield.signal import Signal
    from tests.conftest import noise_video

    video, sound = noise_video(3, 6, 8), np.zeros((4_000, 2), np.float32)
    signals = {"video": Media(video=video, fps=10.0), "image": Media(video=video[:1], fps=10.0, still=True),
               "audio": Media(audio=sound, sample_rate=8_000),
               "audiovisual": Media(video=video, fps=10.0, audio=sound[:1_200], sample_rate=4_000)}
    hidden = {}
    for kind, media in signals.items():
        assert media.kind == kind
        hidden[kind] = neogrid_field(Signal(media), 3_000).config.hidden_tokens
    assert hidden == {"video": 2, "image": 2, "audio": 8, "audiovisual": 8}
