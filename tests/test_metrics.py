import math
import tracemalloc

import numpy as np
import pytest

from neofield.metrics import (
    audio_psnr,
    audio_segmental_snr,
    audio_snr,
    bits_per_pixel,
    kbps,
    video_psnr,
    video_psnr_per_frame,
    video_ssim,
)


def test_video_psnr_uses_peak_255_over_all_rgb_values():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 10  # one value off by 10: MSE = 100 / 96
    assert math.isclose(video_psnr(a, b), 10 * math.log10(255**2 / (100 / 96)))


def test_audio_psnr_uses_peak_to_peak_two():
    a = np.zeros((100, 2), np.float32)
    b = np.full((100, 2), 0.1, np.float32)
    assert math.isclose(audio_psnr(a, b), 10 * math.log10(4 / 0.01), rel_tol=1e-6)


def test_identical_signals_have_infinite_psnr():
    a = np.ones((1, 2, 2, 3), np.uint8)
    assert video_psnr(a, a) == math.inf


def test_rates():
    assert bits_per_pixel(1000, 10, 10, 10) == 8.0
    assert kbps(1000, 2.0) == 4.0


def slow_ssim(x: np.ndarray, y: np.ndarray, sigma: float = 1.5) -> float:
    """Wang et al.'s SSIM written out window by window, to check the fast one against.

    The window is 11x11, or as tall/wide as the frame where the frame is smaller.
    """
    kh, kw = min(11, x.shape[0]), min(11, x.shape[1])
    gh, gw = (np.exp(-((np.arange(k) - (k - 1) / 2) ** 2) / (2 * sigma**2)) for k in (kh, kw))
    w = np.outer(gh, gw) / np.outer(gh, gw).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - kh + 1):
        for j in range(x.shape[1] - kw + 1):
            px, py = x[i:i + kh, j:j + kw], y[i:i + kh, j:j + kw]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def luma(frame):
    return frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_ssim_matches_the_textbook_definition_on_luma():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 16, 18, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    mean, frames = video_ssim(a, b)
    expected = [slow_ssim(luma(fa), luma(fb)) for fa, fb in zip(a, b)]
    assert np.allclose(frames, expected, atol=1e-9) and math.isclose(mean, np.mean(expected))


def test_ssim_is_one_for_a_copy_and_falls_more_for_noise_than_for_a_small_offset():
    rng = np.random.default_rng(1)
    smooth = np.repeat(np.repeat(rng.integers(30, 220, (1, 4, 4, 3)), 6, axis=1), 6, axis=2).astype(np.uint8)
    assert video_ssim(smooth, smooth)[0] == 1.0
    offset = (smooth + 5).astype(np.uint8)
    noisy = np.clip(smooth.astype(int) + rng.integers(-60, 61, smooth.shape), 0, 255).astype(np.uint8)
    assert video_ssim(smooth, noisy)[0] < video_ssim(smooth, offset)[0] < 1.0


def test_per_frame_psnr_scores_each_frame_alone():
    a = np.zeros((3, 4, 4, 3), np.uint8)
    b = a.copy()
    b[1] = 10
    assert video_psnr_per_frame(a, b) == [math.inf, 10 * math.log10(255**2 / 100), math.inf]


def test_snr_shows_a_quiet_failure_that_psnr_flatters():
    t = np.arange(13230) / 44100  # 0.3 s
    quiet = (1e-4 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32)
    worse_than_silence = (-1.1 * quiet).astype(np.float32)
    assert audio_psnr(quiet, worse_than_silence) > 80  # looks excellent
    assert audio_snr(quiet, worse_than_silence) < 0  # but silence would score 0 dB
    assert audio_segmental_snr(quiet, worse_than_silence, 44100) < 0


def test_snr_of_a_known_noise_level():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((48000, 2)) * 0.5
    test = ref + rng.standard_normal(ref.shape) * 0.05  # 20 dB below
    assert abs(audio_snr(ref, test) - 20) < 0.2
    assert abs(audio_segmental_snr(ref, test, 48000) - 20) < 0.3
    assert audio_snr(ref, ref) == math.inf and audio_snr(np.zeros((4, 1)), np.ones((4, 1))) == -math.inf


def test_segmental_snr_leaves_out_silence_and_clamps_each_frame():
    ref = np.zeros((4000, 1))
    ref[:2000] = 0.5  # first half loud, second half silent
    test = ref.copy()
    test[2000:] = 0.3  # errors only in the silence: no loud frame is touched
    assert audio_segmental_snr(ref, test, 1000) == 35.0  # exact loud frames are clamped at 35
    assert math.isnan(audio_segmental_snr(np.zeros((100, 1)), np.ones((100, 1)), 1000))


@pytest.mark.parametrize("height, width", [(7, 20), (20, 5), (4, 6)])
def test_ssim_of_a_frame_smaller_than_the_window_uses_a_window_of_the_frame_side(height, width):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    assert math.isclose(video_ssim(a, b)[1][0], slow_ssim(luma(a[0]), luma(b[0])), rel_tol=0, abs_tol=1e-9)


def test_ssim_and_per_frame_psnr_never_hold_a_float_copy_of_the_clip():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (48, 48, 48, 3), dtype=np.uint8)
    b = rng.integers(0, 256, a.shape, dtype=np.uint8)
    clip_as_float = a.size * 8
    for measure in (video_ssim, video_psnr_per_frame):
        tracemalloc.start()
        try:
            measure(a, b)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < clip_as_float / 4, (measure.__name__, peak, clip_as_float)


def test_new_measures_reject_shapes_that_differ():
    v, a = np.zeros((2, 12, 12, 3), np.uint8), np.zeros((100, 2), np.float32)
    with pytest.raises(ValueError):
        video_psnr_per_frame(v, v[:1])
    with pytest.raises(ValueError):
        video_ssim(v, v[:, :11])
    with pytest.raises(ValueError):
        audio_snr(a, a[:, :1])
    with pytest.raises(ValueError):
        audio_segmental_snr(a, a[:99], 1000)


def test_segmental_snr_rejects_a_frame_length_that_is_not_positive():
    a = np.zeros((100, 1), np.float32)
    with pytest.raises(ValueError):
        audio_segmental_snr(a, a, 1000, frame_seconds=0)
    with pytest.raises(ValueError):
        audio_segmental_snr(a, a, 0)


def test_segmental_snr_counts_frames_down_to_60_db_below_the_loudest():
    ref = np.full((300, 1), 1e-1)  # three 100-sample frames at 1 kHz, 0.1 s each
    ref[100:200] = 1e-1 * 10 ** (-50 / 20)  # 50 dB below the loudest: counted
    ref[200:] = 1e-1 * 10 ** (-70 / 20)  # 70 dB below: silence, left out
    test = ref.copy()
    test[100:] *= 1.1  # 20 dB SNR in both quiet frames
    got = audio_segmental_snr(ref, test, 1000, frame_seconds=0.1)
    assert math.isclose(got, (35.0 + 20.0) / 2, rel_tol=1e-9)  # exact loud frame (clamped to 35), 50 dB frame at 20


def test_segmental_snr_clamps_a_wrecked_frame_at_minus_10_db():
    ref = np.full((200, 1), 0.1)
    test = -10 * ref  # -20.8 dB in both frames
    assert audio_snr(ref, test) < -20
    assert audio_segmental_snr(ref, test, 1000, frame_seconds=0.1) == -10.0


def test_snr_is_zero_for_predicting_silence_and_infinite_for_two_silences():
    ref = np.random.default_rng(5).uniform(-1e-4, 1e-4, (1000, 2)).astype(np.float32)
    assert math.isclose(audio_snr(ref, np.zeros_like(ref)), 0.0, abs_tol=1e-9)
    assert audio_snr(np.zeros((10, 1)), np.zeros((10, 1))) == math.inf
