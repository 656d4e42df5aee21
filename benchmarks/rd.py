"""Rate–distortion of neofield against FFmpeg's codecs on one clip, in one run.

    python benchmarks/rd.py CLIP [--start S] [--duration S] [--resize WxH] [--max-frames N]
                                 [--budget SECONDS] [--points N | --sizes S,S | --lambdas L,L [--preset P]]
                                 [--out DIR] [--skip-neofield] [--force]
    python benchmarks/rd.py TITLE --replot DIR/rd.csv [--force]   # draw an earlier run's CSV as DIR/rd.png

Cuts the piece once with ``read_media``, encodes exactly those decoded samples
with each classical codec into a real file in its real container (the files
stay in ``OUT/encoded``), reads each file back with ``read_media`` and scores it
with ``neofield.quality.compare``: the PSNR ``neofield psnr`` reports. Bytes are
whole files on disk, container included. Video goes through neofield's own
writer (``write_video``: RGB -> BT.709 yuv420p, tagged), so a classical point
is what ``neofield decode --codec ... --crf ...`` would write: x264 and x265
preset medium, SVT-AV1 preset 8. Sound: Opus (.opus, Ogg), AAC (.m4a,
FFmpeg's encoder), MP3 (LAME, .mp3) at a ladder of bit rates. Sound read
back is checked before it is scored: channel order (a probe file per codec;
read_media gives multichannel Ogg Opus in Vorbis order, which is undone),
length, and delay (a lag of an encoder delay's size leaves the point out; the
few samples Opus is off at its lowest rates are scored as decoded and said).

neofield is encoded at ``--points`` settings (see :func:`neofield_ladder`), each
fitted for ``--budget`` seconds, and scored with ``neofield.psnr``.

Writes ``OUT/rd.csv`` and ``OUT/rd.png`` and prints a markdown table of every
point, then per classical codec the BD-rate of neofield against it (log rate
over PSNR by SciPy's monotone piecewise cubic (PCHIP), integrated exactly, not
the original single cubic fit: a cubic through 7 points spanning 25 dB wiggles) and
neofield's bytes as a ratio of the codec's at the lowest and highest PSNR
neofield reached. For a clip with pictures and sound the anchor at each
neofield point is "video codec bytes at its video PSNR + Opus bytes at its
audio PSNR", since one field carries both and its bytes cannot be split.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import av
import numpy as np
from scipy.interpolate import PchipInterpolator  # SciPy's monotone cubic, not a spline of our own

from neofield.media import LAYOUTS, VIDEO_CODECS, Media, Selection, mux_audio, parse_size, read_media, write_video
from neofield.metrics import audio_psnr
from neofield.compare import compare, size_report

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only

COLUMNS = ["codec", "setting", "bytes", "kbps", "video_psnr_db", "video_ssim", "audio_psnr_db", "seconds_to_encode"]

# name -> (neofield.media codec key, suffix, crf ladder): from the encoder's coarsest crf (~22-28 dB on the issue
# clips) up to ~42 dB, near the 4:2:0 ceiling (45.5 dB on bikes, codec-anchors.md). SVT-AV1's crf runs 1..63.
VIDEO_LADDERS: dict[str, tuple[str, str, list[int]]] = {
    "x264": ("h264", ".mp4", [51, 45, 40, 35, 30, 25, 20, 15, 10]),
    "x265": ("h265", ".mp4", [51, 45, 40, 35, 30, 25, 20, 15, 10]),
    "av1-svt": ("av1", ".mp4", [63, 56, 48, 40, 32, 24, 16, 8]),
}
# name -> (muxer, suffix, encoder, kbps per channel); MP3 holds at most two channels.
AUDIO_LADDERS: dict[str, tuple[str, str, str, list[int]]] = {
    "opus": ("ogg", ".opus", "libopus", [6, 8, 12, 16, 24, 32, 48, 64, 96, 128]),
    "aac": ("ipod", ".m4a", "aac", [16, 24, 32, 48, 64, 96, 128, 160]),
    "mp3": ("mp3", ".mp3", "libmp3lame", [16, 24, 32, 48, 64, 96, 128, 160]),
}
AV_AUDIO_ANCHOR = "opus"
MP3_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 layer III at 32-48 kHz
MISALIGNED_DB = 0.2  # a shift that raises the PSNR less than this is noise in the estimate
DELAY_SAMPLES = 100  # a lag this long is an encoder delay left in, not the codec's own output (see check_lag)
MAX_LAG = 5000  # samples searched for a delay


# --------------------------------------------------------------- neofield ----
# Size targets per kind of signal, small to large (bytes). Spread a factor 2 apart over the range
# where the classical codecs sit on the issue clips (codec-anchors.md): ~5-60 KB of video, ~10-100 KB of sound.
SIZES = {"video": [6_000, 12_000, 24_000, 48_000], "image": [2_000, 4_000, 8_000, 16_000], "audio": [12_000, 24_000, 48_000, 96_000],
         "audiovisual": [8_000, 16_000, 32_000, 64_000]}


def neofield_ladder(kind: str, points: int) -> list[dict]:
    """``neofield.encode`` keyword arguments, one size target per rate point, from small to large:
    rate control picks the model width and bit depths for each."""
    if points < 1:
        raise SystemExit(f"--points must be at least 1, not {points}")
    sizes = SIZES[kind]
    if points > len(sizes):  # more points: fill in between, log-uniformly
        sizes = np.geomspace(sizes[0], sizes[-1], points).round().astype(int).tolist()
    picks = np.unique(np.linspace(0, len(sizes) - 1, points).round().astype(int))
    return [{"size": int(sizes[i])} for i in picks]


def parse_sizes(text: str) -> list[int]:
    """``--sizes 8KB,12KB``: size targets in neofield's own units (imported here: torch comes with it)."""
    from neofield.rate import parse_bytes

    return [parse_bytes(t, "--sizes") for t in text.split(",")]


def parse_lambdas(text: str) -> list[float]:
    """``--lambdas 0.3,0.08,0.02``: rate-term weights (``neofield encode --lambda``)."""
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lambdas takes numbers separated by commas, not {text!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--lambdas must be >= 0, not {text!r}")
    return values


def run_neofield(clip: Path, sel: Selection, budget: float, points: int, folder: Path, media: Media,
                 sizes: list[int] | None = None, lambdas: list[float] | None = None,
                 preset: str | None = None) -> list[dict]:
    """Encode the piece at each rung of :func:`neofield_ladder` (or each size target, or each rate-term weight
    with the field of ``preset``) and score it as ``neofield psnr`` does."""
    import neofield  # torch: only when neofield points are asked for

    rows = []
    if lambdas:
        settings = [{"rate_lambda": v, **({"preset": preset} if preset else {})} for v in lambdas]
    else:
        settings = [{"size": n} for n in sizes] if sizes else neofield_ladder(media.kind, points)
    for kwargs in settings:
        setting = " ".join(f"{k} {v}" for k, v in kwargs.items())
        path = folder / f"neofield_{'_'.join(str(v) for v in kwargs.values())}.nf"
        log(f"neofield {setting}: fitting for {budget:g} s")
        t0 = time.perf_counter()
        neofield.encode(clip, path, selection=sel, time_budget=budget, force=True, **kwargs)
        seconds = time.perf_counter() - t0
        rows.append(row("neofield", setting, path.stat().st_size, media, neofield.psnr(clip, path), seconds))
    return rows


# ------------------------------------------------------- classical codecs ----
def run_video(media: Media, folder: Path) -> tuple[list[dict], dict[str, dict[str, list[str]]]]:
    """Every video ladder into real files through neofield's writer, read back and scored
    (and, like :func:`run_audio`, notes: only a codec this PyAV lacks)."""
    rows = []
    notes: dict[str, dict[str, list[str]]] = {}
    original = Media(video=media.video, fps=media.fps)
    for name, (key, suffix, crfs) in VIDEO_LADDERS.items():
        encoder = VIDEO_CODECS[key].encoder
        if encoder not in av.codecs_available:
            notes[name] = {f"skipped: this PyAV's FFmpeg has no {encoder} (neofield's writer uses it)": []}
            continue
        notes[name] = {}
        for crf in crfs:
            path = folder / f"{name}_crf{crf}{suffix}"
            t0 = time.perf_counter()
            write_video(path, iter(media.video), media.fps, codec=key, crf=crf)
            seconds = time.perf_counter() - t0
            decoded = read_media(path)
            if decoded.video is None or decoded.video.shape[0] != media.video.shape[0]:
                raise SystemExit(f"{path}: read back {0 if decoded.video is None else len(decoded.video)} frames, "
                                 f"wrote {len(media.video)}")
            if not math.isclose(decoded.fps, media.fps, rel_tol=1e-3):
                notes[name].setdefault(f"read back at {decoded.fps:g} fps, not {media.fps:g}", []).append(f"crf {crf}")
            rows.append(row(name, f"crf {crf}", path.stat().st_size, media, compare(original, decoded), seconds))
        log(f"{name}: {len(crfs)} points")
    return rows, notes


def write_audio_at(path: Path, audio: np.ndarray, sample_rate: int, muxer: str, encoder: str, bit_rate: int) -> None:
    """Encode sound at one bit rate (neofield's ``write_audio`` has a fixed one), at the rate the
    encoder takes nearest above the source's (Opus: always 48 kHz)."""
    rates = av.codec.Codec(encoder, "w").audio_rates
    rate = 48_000 if encoder == "libopus" else sample_rate
    if rates and rate not in rates:
        rate = min([r for r in rates if r >= rate] or [max(rates)])
    with av.open(str(path), "w", format=muxer) as out:
        stream = out.add_stream(encoder, rate=rate, layout=LAYOUTS[audio.shape[1]])
        stream.bit_rate = bit_rate
        mux_audio(out, stream, audio, sample_rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """FFmpeg's resampler (delay-compensated): Opus decodes at 48 kHz whatever went in."""
    layout = LAYOUTS[audio.shape[1]]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate, frame.pts = rate_in, 0
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate_out)
    chunks = [f.to_ndarray() for f in resampler.resample(frame)] + [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(chunks, axis=1).T


def channel_order(path: Path, channels: int, sample_rate: int, write: Callable[[Path, np.ndarray], None]) -> list[int]:
    """Which source channel each channel ``read_media`` gives back holds, from a probe file: an 80 Hz
    burst in one channel at a time (low enough for an LFE channel), each channel told by when it sounds.

    A probe rather than the clip, so that a swap is found whatever the clip
    and the rate: a film's first second is near silence in most channels.
    read_media reads an Ogg Opus file through libsndfile, which keeps Vorbis
    channel order (5.1: FL C FR BL BR LFE) where FFmpeg and WAV use FL FR C LFE BL BR.
    """
    seg = sample_rate // 10
    t = np.arange(seg) / sample_rate
    burst = (0.5 * np.sin(2 * np.pi * 80 * t) * np.hanning(seg)).astype(np.float32)
    probe = np.zeros((seg * (channels + 1), channels), np.float32)
    for k in range(channels):
        probe[seg // 2 + k * seg: seg // 2 + (k + 1) * seg, k] = burst
    write(path, probe)
    read = read_media(path)
    path.unlink()
    back, rate = read.audio, read.sample_rate
    if rate != sample_rate:
        back = resample(back, rate, sample_rate)
    back = np.pad(back, ((0, max(0, len(probe) - len(back))), (0, 0)))
    energy = [[float(np.sum(back[seg // 2 + k * seg: seg // 2 + (k + 1) * seg, j] ** 2)) for k in range(channels)]
              for j in range(back.shape[1])]
    return [int(np.argmax(e)) for e in energy]


def best_lag(ref: np.ndarray, test: np.ndarray, max_lag: int = MAX_LAG) -> int:
    """Samples by which ``test`` lags ``ref`` (cross-correlation of the channel sums)."""
    a, b = ref.sum(axis=1, dtype=np.float64), test.sum(axis=1, dtype=np.float64)
    n = len(a) + len(b)
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    return int(lags[np.argmax(corr[lags])])


def shifted_psnr(ref: np.ndarray, test: np.ndarray, lag: int) -> float:
    """Audio PSNR with ``test`` moved ``lag`` samples earlier, on the common part."""
    test = test[lag:] if lag >= 0 else test
    ref = ref if lag >= 0 else ref[-lag:]
    n = min(len(ref), len(test))
    return audio_psnr(ref[:n], test[:n])


def check_lag(ref: np.ndarray, test: np.ndarray) -> tuple[str | None, str | None]:
    """(problem, note): is ``test`` sample-aligned with ``ref``?

    A problem is a lag of ``DELAY_SAMPLES`` or more that undoing would raise
    the PSNR by more than ``MISALIGNED_DB``: an encoder delay (Opus pre-skip
    312 at 48 kHz, AAC priming 1024, LAME 576 + 529) the file or the reader
    left in, which would be scored as codec loss. A shorter lag is the codec's
    own output (Opus at its lowest rates comes back a few samples off): it is
    scored as decoded, as a player plays it, and the note says what the best
    lag would have scored.
    """
    lag = best_lag(ref, test)
    gain = shifted_psnr(ref, test, lag) - shifted_psnr(ref, test, 0) if lag else 0.0
    if gain <= MISALIGNED_DB:
        return None, None
    if abs(lag) >= DELAY_SAMPLES:
        return f"the sound lags the source by {lag} samples (an encoder delay left in)", None
    return None, f"{lag:+d} samples off, scored as decoded (aligned: {gain:+.2f} dB)"


def read_audio_back(path: Path, media: Media, order: list[int]) -> tuple[Media | None, list[str]]:
    """A sound file decoded by ``read_media``, its channels put back in the source's order (``order``,
    from :func:`channel_order`), at the source's rate (Opus decodes at 48 kHz), checked for length and
    delay; None when it is misaligned (:func:`check_lag`), and why in the notes."""
    decoded = read_media(path)
    audio, rate = decoded.audio[:, np.argsort(order)], decoded.sample_rate
    notes = []
    if rate != media.sample_rate:
        notes.append(f"read back at {rate} Hz, resampled to {media.sample_rate} Hz")
        audio = resample(audio, rate, media.sample_rate)
    if len(audio) != len(media.audio):
        notes.append(f"length {len(audio) - len(media.audio):+d} samples (the common part is scored)")
    problem, note = check_lag(media.audio, audio)
    if problem:
        return None, [*notes, f"{problem}: left out"]
    return Media(audio=audio, sample_rate=media.sample_rate), notes + ([note] if note else [])


def audio_bit_rates(encoder: str, kbps_per_channel: list[int], channels: int) -> list[int]:
    """The ladder in bits per second for this many channels; MP3 snapped to its legal constant rates."""
    rates = [k * channels for k in kbps_per_channel]
    if encoder == "libmp3lame":
        rates = sorted({min(MP3_KBPS, key=lambda legal: abs(legal - r)) for r in rates})
    return [r * 1000 for r in rates]


def run_audio(media: Media, folder: Path) -> tuple[list[dict], dict[str, dict[str, list[str]]]]:
    """Every audio ladder into real files, read back with ``read_media``, checked and scored.

    Also returns, per codec, what the read-back checks found: note -> the settings it applies to.
    """
    rows: list[dict] = []
    notes: dict[str, dict[str, list[str]]] = {}
    original = Media(audio=media.audio, sample_rate=media.sample_rate)
    channels = media.audio.shape[1]
    for name, (muxer, suffix, encoder, ladder) in AUDIO_LADDERS.items():
        if encoder not in av.codecs_available:
            notes[name] = {f"skipped: this PyAV's FFmpeg has no {encoder}": []}
            continue
        if encoder == "libmp3lame" and channels > 2:
            notes[name] = {f"skipped: MP3 holds one or two channels, not {channels}": []}
            continue
        rates = audio_bit_rates(encoder, ladder, channels)
        notes[name] = {}
        order = list(range(channels))
        if channels > 1:
            write = partial(write_audio_at, sample_rate=media.sample_rate, muxer=muxer, encoder=encoder,
                            bit_rate=rates[-1])
            order = channel_order(folder / f"probe_{name}{suffix}", channels, media.sample_rate, write)
            if sorted(order) != list(range(channels)):
                notes[name] = {f"skipped: a probe's channels come back as {order}, not a reordering": []}
                continue
            if order != list(range(channels)):
                notes[name] = {f"read_media gives the channels back in order {order}: put back in order": []}
        for bit_rate in rates:
            setting = f"{bit_rate // 1000} kbps"
            path = folder / f"{name}_{bit_rate // 1000}k{suffix}"
            t0 = time.perf_counter()
            write_audio_at(path, media.audio, media.sample_rate, muxer, encoder, bit_rate)
            seconds = time.perf_counter() - t0
            decoded, point_notes = read_audio_back(path, media, order)
            for note in point_notes:
                notes[name].setdefault(note, []).append(setting)
            if decoded is not None:
                rows.append(row(name, setting, path.stat().st_size, media, compare(original, decoded), seconds))
        log(f"{name}: {sum(r['codec'] == name for r in rows)} points")
        notes[name] = {n: ["all"] if len(where) == len(rates) else where for n, where in notes[name].items()}
    return rows, notes


def row(codec: str, setting: str, nbytes: int, media: Media, scores: dict, seconds: float | None) -> dict:
    """One CSV row; kbps over the whole piece's duration, as ``neofield psnr`` counts it."""
    return {"codec": codec, "setting": setting, "bytes": nbytes, "kbps": size_report(nbytes, media).get("kbps"),
            "video_psnr_db": scores.get("video_psnr_db"), "video_ssim": scores.get("video_ssim"),
            "audio_psnr_db": scores.get("audio_psnr_db"),
            "seconds_to_encode": None if seconds is None else round(seconds, 2)}


# ------------------------------------------------------------- RD maths ----
def frontier(rates: Sequence[float], psnrs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The points no other point beats (fewer bytes and at least the PSNR), by rising rate and PSNR.

    Interpolating log rate over PSNR needs PSNR to rise with rate; a setting
    that costs more for less (e.g. a ladder's worst end) is not on the curve.
    """
    order = sorted(zip(rates, psnrs), key=lambda p: (p[0], -p[1]))
    kept: list[tuple[float, float]] = []
    for r, p in order:
        if math.isfinite(p) and r > 0 and (not kept or p > kept[-1][1]):
            if kept and r == kept[-1][0]:
                continue
            kept.append((r, p))
    return np.array([r for r, _ in kept], float), np.array([p for _, p in kept], float)


def rate_at(psnr: float, rates: Sequence[float], psnrs: Sequence[float]) -> float | None:
    """Rate a curve needs for ``psnr``: log rate interpolated linearly between its neighbouring points;
    None outside the PSNRs the curve reached."""
    r, p = frontier(rates, psnrs)
    if len(p) == 0 or not p[0] <= psnr <= p[-1]:
        return None
    return float(np.exp(np.interp(psnr, p, np.log(r))))


def bd_rate_why(rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float],
                psnr_b: Sequence[float], names: tuple[str, str] = ("a", "b")) -> tuple[float | None, str]:
    """:func:`bd_rate`, and the PSNR interval it covers or why there is no number (curves called ``names``)."""
    ra, pa = frontier(rate_a, psnr_a)
    rb, pb = frontier(rate_b, psnr_b)
    for name, p, given in ((names[0], pa, psnr_a), (names[1], pb, psnr_b)):
        if len(p) < 4:
            points = f"{len(p)} point{'s' * (len(p) != 1)}"
            return None, f"{name} has {points} on its curve ({len(given)} measured; 4 needed)"
    lo, hi = max(pa[0], pb[0]), min(pa[-1], pb[-1])
    if lo >= hi:
        return None, (f"the PSNR ranges do not overlap ({names[0]} {pa[0]:.2f}-{pa[-1]:.2f} dB, "
                      f"{names[1]} {pb[0]:.2f}-{pb[-1]:.2f} dB)")
    fa, fb = PchipInterpolator(pa, np.log(ra)), PchipInterpolator(pb, np.log(rb))
    mean = float(fa.integrate(lo, hi) - fb.integrate(lo, hi)) / (hi - lo)
    return 100.0 * (math.exp(mean) - 1.0), f"over {lo:.2f}-{hi:.2f} dB"


def bd_rate(rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float],
            psnr_b: Sequence[float]) -> float | None:
    """Bjøntegaard delta rate of curve a against curve b, in percent: how many more bytes a needs than b
    at the same PSNR, averaged (in log rate) over the PSNRs both reached. Log rate is interpolated over
    PSNR by PCHIP through each curve's non-dominated points. None when a curve has fewer than 4 such
    points or the PSNR ranges do not overlap."""
    return bd_rate_why(rate_a, psnr_a, rate_b, psnr_b)[0]


# ------------------------------------------------------------ reporting ----
def axis_of(media: Media) -> str:
    """The PSNR a clip's curves are drawn over: the pictures' when there are any."""
    return "video_psnr_db" if media.video is not None else "audio_psnr_db"


def av_anchor_rows(nf_rows: list[dict], classical: list[dict], media: Media) -> list[dict]:
    """For a clip with pictures and sound: at each neofield point, each video codec's bytes at its video
    PSNR plus Opus's at its audio PSNR (no row where either lies outside what the codec reached)."""
    sound = [r for r in classical if r["codec"] == AV_AUDIO_ANCHOR]
    rows = []
    for name in dict.fromkeys(r["codec"] for r in classical if r["video_psnr_db"] is not None):
        pics = [r for r in classical if r["codec"] == name]
        for nf in nf_rows:
            v = rate_at(nf["video_psnr_db"], [r["bytes"] for r in pics], [r["video_psnr_db"] for r in pics])
            a = rate_at(nf["audio_psnr_db"], [r["bytes"] for r in sound], [r["audio_psnr_db"] for r in sound])
            if v is None or a is None:
                continue
            scores = {"video_psnr_db": nf["video_psnr_db"], "audio_psnr_db": nf["audio_psnr_db"]}
            rows.append(row(f"{name}+{AV_AUDIO_ANCHOR}", f"at neofield {nf['setting']}", round(v + a), media,
                            scores, None))
    return rows


def comparisons(nf_rows: list[dict], classical: list[dict], anchors: list[dict], media: Media) -> list[str]:
    """Markdown lines: per classical curve, neofield's BD-rate and bytes ratio at its lowest and highest PSNR."""
    axis = axis_of(media)
    av_clip = media.video is not None and media.audio is not None
    names = list(dict.fromkeys(r["codec"] for r in classical if r[axis] is not None))
    if av_clip:
        names = [f"{n}+{AV_AUDIO_ANCHOR}" for n in names]
    nf_bytes, nf_psnrs = [r["bytes"] for r in nf_rows], [r[axis] for r in nf_rows]
    rates, psnrs = frontier(nf_bytes, nf_psnrs)
    ends = [next(r for r in nf_rows if (r["bytes"], r[axis]) == (rates[i], psnrs[i])) for i in (0, -1)]
    what = f"video PSNR; anchor: video codec + {AV_AUDIO_ANCHOR} at each neofield point's video and audio PSNR" \
        if av_clip else f"{axis.split('_')[0]} PSNR"
    lines = [f"neofield against each codec ({what}); BD-rate: PCHIP of log rate over PSNR, positive = neofield "
             + "needs more bytes", "",
             f"| codec | BD-rate | neofield / codec bytes at {ends[0][axis]:.2f} dB | at {ends[1][axis]:.2f} dB |",
             "|---|---|---|---|"]
    for name in names:
        curve = [r for r in (anchors if av_clip else classical) if r["codec"] == name]
        value, why = bd_rate_why(nf_bytes, nf_psnrs, [r["bytes"] for r in curve], [r[axis] for r in curve],
                                 ("neofield", name))
        bd = f"{value:+.1f} % ({why})" if value is not None else f"none: {why}"
        ratios = []
        for nf in ends:
            if av_clip:
                at = next((r["bytes"] for r in curve if r["setting"] == f"at neofield {nf['setting']}"), None)
            else:
                at = rate_at(nf[axis], [r["bytes"] for r in curve], [r[axis] for r in curve])
            ratios.append(f"{nf['bytes'] / at:.2f}x ({nf['bytes']:,} / {at:,.0f})" if at else
                          f"not reached ({reach(classical, name)})")
        lines.append(f"| {name} | {bd} | {ratios[0]} | {ratios[1]} |")
    return lines


def reach(classical: list[dict], name: str) -> str:
    """The PSNRs a codec's curve (or each part of a ``video+audio`` anchor's) spans, for a "not reached"."""
    parts = []
    for part in name.split("+"):
        for key in ("video_psnr_db", "audio_psnr_db"):
            got = [(r["bytes"], r[key]) for r in classical if r["codec"] == part and r[key] is not None]
            if got:
                psnrs = frontier(*zip(*got))[1]
                parts.append(f"{part} {psnrs[0]:.2f}-{psnrs[-1]:.2f} dB")
    return ", ".join(parts)


def markdown_table(rows: list[dict]) -> list[str]:
    def cell(v, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = ["| codec | setting | bytes | kbps | video PSNR dB | video SSIM | audio PSNR dB | encode s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['codec']} | {r['setting']} | {r['bytes']:,} | {cell(r['kbps'], '.1f')} | "
                     f"{cell(r['video_psnr_db'], '.2f')} | {cell(r['video_ssim'], '.4f')} | "
                     f"{cell(r['audio_psnr_db'], '.2f')} | {cell(r['seconds_to_encode'], '.1f')} |")
    return lines


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k in COLUMNS} for r in rows)


def plot(path: Path, rows: list[dict], title: str) -> None:
    """PSNR over kbps (log), one line per codec and one panel per modality scored; matplotlib only here."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed (pip install -e '.[bench]'): no {path.name}")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    plain = ticker.FuncFormatter(lambda v, _=None: f"{v:g}")

    axes_keys = [k for k in ("video_psnr_db", "audio_psnr_db") if any(r[k] is not None for r in rows)]
    codecs = dict.fromkeys(r["codec"] for r in rows if r["codec"] != "neofield")
    colours = {name: f"C{i % 10}" for i, name in enumerate(codecs)}  # one colour per codec in every panel
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(6.5 * len(axes_keys), 4.8), squeeze=False)
    for ax, key in zip(axes[0], axes_keys):
        for name in dict.fromkeys(r["codec"] for r in rows if r[key] is not None and r["kbps"]):
            pts = sorted((r["kbps"], r[key]) for r in rows if r["codec"] == name and r[key] is not None)
            anchor = "+" in name
            style = {"marker": "o", "lw": 2.5, "color": "black"} if name == "neofield" else \
                {"marker": "s" if anchor else ".", "ls": "--" if anchor else "-", "color": colours[name]}
            ax.plot(*zip(*pts), label=name, **style)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)  # 20, 50, 100, 200: not 2 x 10^1
        ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: plain(v) if f"{v:.0e}"[0] in "25" else ""))
        both = any(r["video_psnr_db"] is not None and r["audio_psnr_db"] is not None for r in rows)
        ax.set_xlabel("kbps, whole files" + (" (neofield and the + anchors: pictures and sound)" if both else ""))
        ax.set_ylabel(f"{key.split('_')[0]} PSNR (dB)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_csv(path: Path) -> list[dict]:
    """The rows :func:`write_csv` wrote, their numbers as numbers again (empty cells None)."""
    def value(key: str, v: str):
        if key in ("codec", "setting"):
            return v
        return None if not v else int(v) if key == "bytes" else float(v)

    with open(path, newline="") as f:
        return [{k: value(k, v) for k, v in r.items()} for r in csv.DictReader(f)]


def replot(csv_path: Path, png: Path, title: str) -> None:
    """``--replot``: the plot and table of an earlier run's CSV, without encoding anything again."""
    rows = read_csv(csv_path)
    plot(png, rows, title)
    print("\n".join(markdown_table(rows)))
    if png.exists():
        print(f"\nwrote {png}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- main ----
def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path, metavar="CLIP")
    ap.add_argument("--start", type=float, default=0.0, help="seconds into the clip")
    ap.add_argument("--duration", type=float, help="seconds to keep")
    ap.add_argument("--resize", type=parse_size, metavar="WxH")
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--budget", type=float, default=120.0, help="neofield fit time per rate point, seconds")
    ap.add_argument("--points", type=int, default=4, help="neofield rate points")
    ap.add_argument("--sizes", type=parse_sizes,
                    help="neofield's size targets instead of the ladder, e.g. 8KB,12KB,16KB,24KB")
    ap.add_argument("--lambdas", type=parse_lambdas,
                    help="neofield's rate-term weights instead of size targets (encode --lambda), e.g. 0.3,0.08,0.02")
    ap.add_argument("--preset", help="with --lambdas: the field's size, as encode --preset sets it "
                                     "(e.g. audio: ~200 k parameters on 2 s of bikes at 320x136)")
    ap.add_argument("--out", type=Path, help="folder for rd.csv, rd.png and the encoded files (rd_out/<clip stem>)")
    ap.add_argument("--skip-neofield", action="store_true", help="classical codecs only")
    ap.add_argument("--force", action="store_true", help="overwrite an earlier run's results in --out")
    ap.add_argument("--replot", type=Path, metavar="CSV", help="plot an earlier run's rd.csv as CSV.png (CLIP: "
                                                                "the title) and encode nothing")
    args = ap.parse_args(argv)
    if args.replot is not None:
        png = args.replot.with_suffix(".png")
        if not args.replot.is_file():
            raise SystemExit(f"--replot: {args.replot} is not a file")
        if png.exists() and not args.force:
            raise SystemExit(f"{png} exists (pass --force to draw it again)")
        return replot(args.replot, png, str(args.clip))

    sel = Selection(args.start, args.duration, args.max_frames, args.resize)
    sel.check()
    if not args.skip_neofield:
        neofield_ladder("video", args.points)  # a bad --points fails before minutes of encoding
    out = args.out or Path("rd_out") / args.clip.stem
    encoded = out / "encoded"
    if not args.force and ((out / "rd.csv").exists() or encoded.exists()):
        raise SystemExit(f"{out} holds an earlier run (pass --force to overwrite it)")
    shutil.rmtree(encoded, ignore_errors=True)
    encoded.mkdir(parents=True)

    media = read_media(args.clip, sel)
    if media.still:
        raise SystemExit("rd.py measures clips and sounds, not still images")
    parts = []
    if media.video is not None:
        f, h, w, _ = media.video.shape
        parts.append(f"{w}x{h}, {f} frames at {media.fps:g} fps")
    if media.audio is not None:
        parts.append(f"{len(media.audio)} samples x {media.audio.shape[1]} ch at {media.sample_rate} Hz")
    title = f"{args.clip.name}: {'; '.join(parts)}"
    log(title)

    classical: list[dict] = []
    notes: dict[str, dict[str, list[str]]] = {}
    for modality, run in (("video", run_video), ("audio", run_audio)):
        if getattr(media, modality) is not None:
            found_rows, found_notes = run(media, encoded)
            classical += found_rows
            notes.update(found_notes)
    nf_rows = [] if args.skip_neofield else run_neofield(args.clip, sel, args.budget, args.points, encoded, media,
                                                                args.sizes, args.lambdas, args.preset)
    av_clip = media.video is not None and media.audio is not None
    anchors = av_anchor_rows(nf_rows, classical, media) if av_clip and nf_rows else []
    rows = classical + nf_rows + anchors

    write_csv(out / "rd.csv", rows)
    (out / "rd.png").unlink(missing_ok=True)
    plot(out / "rd.png", rows, title)
    print(f"## {title}\n")
    print("\n".join(markdown_table(rows)))
    if notes:
        print("\nread back with read_media, per codec:")
        for name, found in notes.items():
            said = "; ".join(f"{', '.join(where)}: {note}" if where and where != ["all"] else note
                             for note, where in found.items())
            fine = "frames as written" if name in VIDEO_LADDERS else "length as written, no delay, channels in order"
            print(f"- {name}: {said or fine}")
    print()
    if nf_rows:
        print("\n".join(comparisons(nf_rows, classical, anchors, media)))
    else:
        print("no neofield points (--skip-neofield): no BD-rate")
    print(f"\nwrote {out / 'rd.csv'}" + (f" and {out / 'rd.png'}" if (out / "rd.png").exists() else ""))


if __name__ == "__main__":
    main()
