"""Comparing two pieces of media: the quality report ``psnr`` and ``encode`` print.

PSNR is what codecs are compared by, so it leads; beside it stand measures
that do not flatter: SSIM for pictures, and SNR and segmental SNR for sound,
where a fixed-peak PSNR scores a failed fit of a quiet track as excellent.
Definitions are in :mod:`neofield.metrics`.
"""

from __future__ import annotations

import numpy as np

from .errors import NeofieldError
from .media import Media
from .metrics import (
    audio_psnr,
    audio_segmental_snr,
    audio_snr,
    bits_per_pixel,
    kbps,
    video_psnr,
    video_psnr_per_frame,
    video_ssim,
)


def compare(original: Media, candidate: Media, per_frame: bool = False) -> dict:
    """Quality of ``candidate`` against ``original``, per modality, on the same grid.

    A candidate one pixel wider or taller than an odd-sized original is a
    decode padded to even dimensions for a 4:2:0 codec; the pad is cropped.
    Sound may differ in length by a few codec frames (AAC pads its last one);
    the common part is compared. ``per_frame`` adds the PSNR of every frame.
    """
    out: dict = {}
    if original.video is not None and candidate.video is not None:
        a, b = original.video, _crop_even_pad(original.video, candidate.video)
        if a.shape != b.shape:
            raise NeofieldError(f"video grids differ: original {_shape(a)} vs {_shape(b)}")
        out["video_psnr_db"] = round(video_psnr(a, b), 4)
        ssim, frames = video_ssim(a, b)
        out["video_ssim"] = round(ssim, 5)
        if per_frame:
            out["video_psnr_per_frame_db"] = [round(v, 3) for v in video_psnr_per_frame(a, b)]
            out["video_ssim_per_frame"] = [round(v, 5) for v in frames]
    if original.audio is not None and candidate.audio is not None:
        a, b = original.audio, candidate.audio
        if a.shape[1] != b.shape[1]:
            raise NeofieldError(f"audio channels differ: {a.shape[1]} vs {b.shape[1]}")
        if abs(len(a) - len(b)) > max(2048, 0.005 * len(a)):
            raise NeofieldError(f"audio lengths differ: {len(a)} vs {len(b)} samples")
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
        out["audio_psnr_db"] = round(audio_psnr(a, b), 4)
        out["audio_snr_db"] = round(audio_snr(a, b), 4)
        out["audio_segmental_snr_db"] = round(audio_segmental_snr(a, b, original.sample_rate), 4)
    if not out:
        raise NeofieldError("the two inputs share no modality (one is video only, the other sound only)")
    return out


def _crop_even_pad(original: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    _, h, w, _ = original.shape
    _, ch, cw, _ = candidate.shape
    if (ch, cw) != (h, w) and (ch, cw) == (h + h % 2, w + w % 2):
        return candidate[:, :h, :w]
    return candidate


def _shape(video: np.ndarray) -> str:
    f, h, w, _ = video.shape
    return f"{w}x{h}, {f} frames"


def size_report(nbytes: int, media: Media) -> dict:
    """Bytes, bits per pixel / kbps, and the ratio against the raw signal (8-bit RGB, 16-bit PCM)."""
    raw = 0
    out: dict = {"bytes": nbytes}
    duration = 0.0
    if media.video is not None:
        f, h, w, _ = media.video.shape
        raw += media.video.size
        out["bits_per_pixel"] = round(bits_per_pixel(nbytes, f, h, w), 5)
        duration = f / media.fps
    if media.audio is not None:
        raw += media.audio.size * 2
        duration = max(duration, len(media.audio) / media.sample_rate)
    if duration and not media.still:
        out["kbps"] = round(kbps(nbytes, duration), 2)
    out["raw_bytes"] = raw
    out["compression_ratio"] = round(raw / nbytes, 2)
    return out
