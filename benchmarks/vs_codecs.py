"""How a .nf bundle's size compares with FFmpeg's codecs at the same quality.

    python benchmarks/vs_codecs.py ORIGINAL BUNDLE.nf

Cuts the piece the bundle was encoded from out of ORIGINAL, encodes it with
classical codecs at a ladder of quality settings (in memory, in this run),
measures each with neofield's PSNR definitions, and prints, per codec, the
smallest file reaching the bundle's PSNR (log-size interpolation between the
two ladder points around it) and the bundle's size as a ratio of it. Also the
raw size (8-bit RGB, 16-bit PCM). Video: x264 / x265 (yuv444p, medium) and
SVT-AV1 (yuv420p, preset 6); audio: Opus and FLAC.
"""

from __future__ import annotations

import argparse
import io
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

import neofield
from neofield.media import Selection, mux_audio, read_media
from neofield.metrics import audio_psnr, video_psnr

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only

VIDEO_CODECS = {
    "x264 medium yuv444p": ("libx264", "yuv444p", "crf", [45, 40, 35, 30, 26, 22, 18, 14], {"preset": "medium"}),
    "x265 medium yuv444p": ("libx265", "yuv444p", "crf", [45, 40, 35, 30, 26, 22, 18, 14],
                            {"preset": "medium", "x265-params": "log-level=none"}),
    "AV1 svt p6 yuv420p": ("libsvtav1", "yuv420p", "crf", [60, 55, 50, 45, 40, 35, 30, 25, 20], {"preset": "6"}),
}
OPUS_KBPS = [8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]


def encode_video(frames: np.ndarray, fps: float, codec: str, pix_fmt: str, options: dict) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001000))
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = pix_fmt
        s.options = {k: str(v) for k, v in options.items()}
        for f in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(s.encode(None))
    return buf.getvalue()


def decode_video(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def encode_decode_audio(audio: np.ndarray, rate: int, codec: str, options: dict, bitrate: int | None = None,
                        ) -> tuple[int, np.ndarray]:
    """Encode (resampling to 48 kHz for Opus), decode, resample back, and return (bytes, samples)."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[audio.shape[1]]
    enc_rate = 48000 if codec == "libopus" else rate
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg" if codec == "libopus" else "flac") as out:
        s = out.add_stream(codec, rate=enc_rate, layout=layout)
        if bitrate:
            s.bit_rate = bitrate
        s.options = options
        mux_audio(out, s, audio, rate)
    data = buf.getvalue()
    chunks = []
    with av.open(io.BytesIO(data)) as c:
        back = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        for fr in c.decode(c.streams.audio[0]):
            chunks += [g.to_ndarray() for g in back.resample(fr)]
        chunks += [g.to_ndarray() for g in back.resample(None)]
    return len(data), np.concatenate(chunks, axis=1).T


def aligned_audio_psnr(ref: np.ndarray, test: np.ndarray, max_lag: int = 5000) -> float:
    """PSNR after the best lag in +-max_lag (codec delay), as codec-anchors.md measures it."""
    a, b = ref[:, 0].astype(np.float64), test[:, 0].astype(np.float64)
    n = len(a) + len(b)
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    lag = int(lags[np.argmax(corr[lags])])
    test = test[lag:] if lag >= 0 else np.pad(test, ((-lag, 0), (0, 0)))
    m = min(len(ref), len(test))
    test = np.pad(test[:m], ((0, len(ref) - m), (0, 0)))
    return audio_psnr(ref, test)


def size_at(target: float, points: list[tuple[float, int]]) -> str:
    """Smallest size reaching ``target`` dB, interpolating log size between ladder points."""
    pts = sorted(points, key=lambda p: p[1])
    for (p0, s0), (p1, s1) in zip(pts, pts[1:]):
        if p0 < target <= p1:
            f = (target - p0) / (p1 - p0)
            return f"~{math.exp(math.log(s0) + f * (math.log(s1) - math.log(s0))):,.0f}"
    if pts and pts[0][0] >= target:
        return f"<={pts[0][1]:,}"
    return "not reached"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("original", type=Path)
    ap.add_argument("bundle", type=Path)
    args = ap.parse_args()
    b = neofield.load(args.bundle)
    media = read_media(args.original, Selection.from_dict(b.meta["source"]["selection"]))
    scores = neofield.psnr(args.original, args.bundle)
    nbytes = args.bundle.stat().st_size
    print(f"{args.bundle}: {nbytes:,} bytes; raw {scores['raw_bytes']:,} bytes "
          f"(ratio {scores['compression_ratio']:.1f}x)\n")
    print("| modality | codec | bundle PSNR | codec bytes at that PSNR | bundle / codec | ladder (PSNR dB: bytes) |")
    print("|---|---|---|---|---|---|")
    if media.video is not None:
        target = scores["video_psnr_db"]
        for name, (codec, pix, knob, values, opts) in VIDEO_CODECS.items():
            ladder = []
            for v in values:
                data = encode_video(media.video, media.fps, codec, pix, {**opts, knob: v})
                ladder.append((video_psnr(media.video, decode_video(data)), len(data)))
            at = size_at(target, ladder)
            ratio = f"{nbytes / float(at.strip('~<=').replace(',', '')):.1f}x" if at[0] in "~<" else "-"
            lad = ", ".join(f"{p:.1f}: {s:,}" for p, s in ladder)
            print(f"| video | {name} | {target:.2f} | {at} | {ratio} | {lad} |")
    if media.audio is not None:
        target = scores["audio_psnr_db"]
        ladder = []
        for kbps in OPUS_KBPS:
            bitrate = kbps * 1000 * media.audio.shape[1]
            size, out = encode_decode_audio(media.audio, media.sample_rate, "libopus", {}, bitrate)
            ladder.append((aligned_audio_psnr(media.audio, out), size))
        at = size_at(target, ladder)
        ratio = f"{nbytes / float(at.strip('~<=').replace(',', '')):.1f}x" if at[0] in "~<" else "-"
        print(f"| audio | opus | {target:.2f} | {at} | {ratio} | {', '.join(f'{p:.1f}: {s:,}' for p, s in ladder)} |")
        size, _ = encode_decode_audio(media.audio, media.sample_rate, "flac", {})
        print(f"| audio | flac (lossless, 16-bit) | - | {size:,} | {nbytes / size:.1f}x | - |")


if __name__ == "__main__":
    main()
