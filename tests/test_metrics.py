import math

import numpy as np

from neofield.metrics import audio_psnr, bits_per_pixel, kbps, video_psnr


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
