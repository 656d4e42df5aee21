"""Quality and size measures, with the definitions neofield reports.

* Video PSNR: ``10 log10(255^2 / MSE)`` with the MSE over every 8-bit RGB
  value of the whole clip (frames x height x width x 3).
* Audio PSNR: ``10 log10(2^2 / MSE)``: samples in [-1, 1], peak-to-peak 2,
  MSE over every sample of every channel.
"""

from __future__ import annotations

import math

import numpy as np


def video_mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two uint8 clips, frame by frame (no float copy of the clip)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    total = 0
    for fa, fb in zip(a, b):
        d = (fa.astype(np.int64) - fb.astype(np.int64)).ravel()
        total += int(d @ d)
    return total / a.size


def video_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return _psnr(video_mse(a, b), 255.0)


def audio_psnr(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return _psnr(mse, 2.0)


def _psnr(mse: float, peak: float) -> float:
    return 10 * math.log10(peak * peak / mse) if mse > 0 else math.inf


def bits_per_pixel(nbytes: int, frames: int, height: int, width: int) -> float:
    return 8 * nbytes / (frames * height * width)


def kbps(nbytes: int, seconds: float) -> float:
    return 8 * nbytes / seconds / 1000
