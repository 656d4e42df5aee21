import math

import numpy as np

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


def slow_ssim(x: np.ndarray, y: np.ndarray, k: int = 11, sigma: float = 1.5) -> float:
    """Wang et al.'s SSIM written out window by window, to check the fast one against."""
    r = np.arange(k) - (k - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            px, py = x[i:i + k, j:j + k], y[i:i + k, j:j + k]
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
