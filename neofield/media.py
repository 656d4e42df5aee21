"""Media I/O: read any clip, image or sound into arrays, and write arrays back.

Everything format-specific lives here, behind :func:`read_media` and the two
writers, so the rest of neofield only sees numpy arrays:

* video: ``uint8`` array ``(frames, height, width, 3)`` in RGB. It stays uint8
  in memory: a float32 copy of a long clip would be four times larger.
* audio: ``float32`` array ``(samples, channels)`` in [-1, 1].
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import struct
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
from av.video.reformatter import Colorspace
import imageio.v3 as iio
import numpy as np
import soundfile as sf
from av.packet import PacketSideData, packet_sidedata_type_from_literal

from . import options
from .errors import NeofieldError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".m4a", ".aac", ".aiff", ".aif"}
VIDEO_OUT_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".gif"}
AUDIO_OUT_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".m4a", ".mp3"}

logging.getLogger("libav").setLevel(logging.ERROR)


@dataclass
class Media:
    """Decoded media: a video track, an audio track, or both."""

    video: np.ndarray | None = None  # (frames, height, width, 3) uint8 RGB
    fps: float | None = None
    audio: np.ndarray | None = None  # (samples, channels) float32 in [-1, 1]
    sample_rate: int | None = None
    still: bool = False  # a single image rather than a clip
    rotation: int = 0  # degrees (counter-clockwise) the source asked players to turn it; already applied
    sample_aspect_ratio: tuple[int, int] = (1, 1)  # pixel shape (width : height) of the frames as stored
    vfr: bool = False  # the source had a variable frame rate and was resampled to ``fps``

    @property
    def kind(self) -> str:
        if self.video is not None and self.audio is not None:
            return "audiovisual"
        if self.video is not None:
            return "image" if self.still else "video"
        return "audio"


@dataclass(frozen=True)
class Selection:
    """Which part of a source to read, and at what size. Stored in bundles so
    that ``psnr`` can cut the same piece out of the original again."""

    start: float = 0.0
    duration: float | None = None
    max_frames: int | None = None
    resize: tuple[int, int] | None = None  # (width, height)

    def to_dict(self) -> dict:
        return {"start": self.start, "duration": self.duration, "max_frames": self.max_frames,
                "resize": list(self.resize) if self.resize else None}

    def check(self) -> None:
        """One clear error for a bad ``--start/--duration/--max-frames/--resize``, before any file is opened."""
        options.non_negative_float("--start", self.start)
        options.positive_float("--duration", self.duration)
        options.positive_int("--max-frames", self.max_frames)
        if self.resize is not None:
            options.check_size("--resize", self.resize)

    @classmethod
    def from_dict(cls, d: dict) -> Selection:
        return cls(d.get("start", 0.0), d.get("duration"), d.get("max_frames"),
                   tuple(d["resize"]) if d.get("resize") else None)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``320x180``) into ``(width, height)``."""
    return options.parse_size(text)


def read_media(path: str | Path, selection: Selection = Selection()) -> Media:
    """Read a clip, an image or a sound file.

    Raises :class:`NeofieldError` for files that are missing, empty, not
    media, or hold neither video nor audio.
    """
    path = Path(path)
    if not path.exists():
        raise NeofieldError(f"{path} does not exist")
    if path.is_dir():
        raise NeofieldError(f"{path} is a directory, not a media file")
    if path.stat().st_size == 0:
        raise NeofieldError(f"{path} is empty")
    selection.check()

    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        media = _read_image(path, selection)
    elif suffix in AUDIO_SUFFIXES:
        media = _read_audio_file(path, selection)
    else:
        media = _read_container(path, selection)
    if media.video is not None and len(media.video) == 0:
        raise NeofieldError(f"{path}: no video frames in the selected range")
    if media.audio is not None and len(media.audio) == 0:
        raise NeofieldError(f"{path}: no audio samples in the selected range")
    return media


def _read_image(path: Path, sel: Selection) -> Media:
    try:
        img = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for bad files
        raise NeofieldError(f"{path} is not an image neofield can read ({_first_line(exc)})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3:
        raise NeofieldError(f"{path}: unsupported image shape {img.shape}")
    if img.shape[2] == 4:
        img = img[..., :3]
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) / np.iinfo(img.dtype).max * 255).round().astype(np.uint8)
    if sel.resize:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        img = frame.to_ndarray(format="rgb24", width=sel.resize[0], height=sel.resize[1], interpolation="AREA")
    return Media(video=img[None], fps=1.0, still=True)


def _read_audio_file(path: Path, sel: Selection) -> Media:
    try:
        info = sf.info(str(path))
    except Exception:
        return _read_container(path, sel)  # e.g. mp3/m4a on an old libsndfile: let FFmpeg try
    if info.format == "OGG" and info.channels > 2:
        # libsndfile hands Ogg's channels over in Vorbis order (FL C FR ...); FFmpeg reorders
        # them to the order every other reader and writer here uses
        return _read_container(path, sel)
    start = int(round(sel.start * info.samplerate))
    frames = -1 if sel.duration is None else int(round(sel.duration * info.samplerate))
    try:
        audio, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise NeofieldError(f"{path}: cannot decode audio ({_first_line(exc)})") from None
    return Media(audio=np.ascontiguousarray(audio), sample_rate=int(sr))


def _read_container(path: Path, sel: Selection) -> Media:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise NeofieldError(f"{path} is not a media file FFmpeg can read ({_first_line(exc)})") from None
    with container:
        has_video = bool(_video_streams(container))
        has_audio = bool(container.streams.audio)
    if not has_video and not has_audio:
        raise NeofieldError(f"{path} has no video or audio stream")
    media = Media()
    try:
        if has_video:
            media = _decode_video(path, sel)
        if has_audio:
            media.audio, media.sample_rate = _decode_audio(path, sel)
    except av.FFmpegError as exc:
        raise NeofieldError(f"{path}: decoding failed ({_first_line(exc)})") from None
    if media.video is not None and media.audio is not None and sel.max_frames is not None:
        # --max-frames cuts the clip, so the sound ends with the last frame kept
        media.audio = media.audio[: int(round(len(media.video) / media.fps * media.sample_rate))]
    if media.video is not None and len(media.video) == 1 and media.audio is None:
        media.still = True  # a one-frame container (e.g. a gif still) is an image
    return media


def _video_streams(container) -> list:
    """The real video tracks: cover art (an mp3's or m4a's attached picture) is not one."""
    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def _decode_video(path: Path, sel: Selection) -> Media:
    """Decode the selected frames upright, at a constant rate.

    Rotation (the stream's display matrix) is applied as players apply it, so
    every output format shows the picture upright without metadata, and
    ``sel.resize`` is the displayed size. A variable-rate stream is resampled
    to its average rate: output frame ``k`` shows the latest source frame at
    or before ``(k + 0.5) / fps`` (FFmpeg's ``fps`` filter does the same).
    """
    with av.open(str(path)) as container:
        stream = _video_streams(container)[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        fps = float(rate)
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio or Fraction(1)
        end = None if sel.duration is None else sel.start + sel.duration
        if sel.start > 0:
            container.seek(int(sel.start / stream.time_base), stream=stream, backward=True)
        frames: list[np.ndarray] = []
        times: list[float] = []
        rotation = 0
        half = 0.5 / fps
        after = None  # time of the first frame past the selection: the last one kept lasts until it
        last_duration = None
        for index, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else index / fps
            if t < sel.start - half:
                continue
            # --max-frames: a frame later than the last output frame's sampling time is never shown
            past = sel.max_frames is not None and times and t - times[0] > (sel.max_frames - 0.5) / fps
            if past or (end is not None and t >= end - half):
                after = t
                break
            if not frames:
                rotation = int(round(frame.rotation or 0)) % 360 // 90 * 90
            frames.append(_upright(frame, rotation, sel.resize))
            times.append(t)
            last_duration = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
    if rotation in (90, 270):
        sar = 1 / Fraction(sar)
    sar = Fraction(sar).limit_denominator(65535) if sar else Fraction(1)
    media = Media(fps=fps, rotation=rotation, sample_aspect_ratio=(sar.numerator, sar.denominator))
    if not frames:
        media.video = np.zeros((0, 1, 1, 3), np.uint8)
        return media
    stamps = times + ([after] if after is not None else [])
    if _uneven(stamps, fps):
        if after is not None:
            last_end = after
        else:  # the last frame's own duration, else the mean spacing
            last_end = times[-1] + (last_duration or ((times[-1] - times[0]) / (len(times) - 1) if len(times) > 1
                                                      else 1 / fps))
        span = min(last_end, end if end is not None else math.inf) - times[0]
        count = max(1, round(span * fps))
        clock = np.maximum.accumulate(np.asarray(times)) - times[0]  # a broken file's stray stamp stays in order
        picks = np.searchsorted(clock, (np.arange(count) + 0.5) / fps, side="right") - 1
        frames = [frames[i] for i in np.clip(picks, 0, len(frames) - 1)]
        media.vfr = True
    if sel.max_frames is not None:
        frames = frames[: sel.max_frames]
    media.video = np.stack(frames)
    return media


def _uneven(times: list[float], fps: float) -> bool:
    """Frame times that stray from a constant rate by more than a quarter frame."""
    if len(times) < 2:
        return False
    gaps = np.diff(times)
    return bool(np.abs(gaps - 1 / fps).max() > 0.25 / fps)


def _upright(frame: av.VideoFrame, rotation: int, resize: tuple[int, int] | None) -> np.ndarray:
    kwargs = {}
    if resize:  # the displayed size: the coded frame is resized before it is turned
        w, h = resize if rotation in (0, 180) else resize[::-1]
        kwargs = dict(width=w, height=h, interpolation="AREA")
    image = frame.to_ndarray(format="rgb24", **kwargs)
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


def _decode_audio(path: Path, sel: Selection) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        sr = stream.rate
        channels = stream.channels
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=sr)
        if sel.start > 0:
            container.seek(int(sel.start / stream.time_base), stream=stream, backward=True)
        chunks: list[np.ndarray] = []
        first_time = None
        end = None if sel.duration is None else sel.start + sel.duration
        # where the stream says it ends: AAC decodes a padded last frame (48,000 written, 49,152 read)
        declared_end = None
        if stream.duration and stream.time_base:
            declared_end = float((stream.duration + (stream.start_time or 0)) * stream.time_base)
        for frame in container.decode(stream):
            if first_time is None:
                first_time = frame.time if frame.time is not None else 0.0
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(channels, -1))
            if end is not None and frame.time is not None and frame.time > end:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(channels, -1))
    if not chunks:
        return np.zeros((0, channels), np.float32), sr
    audio = np.concatenate(chunks, axis=1).T
    if declared_end is not None:
        audio = audio[: max(0, int(round((declared_end - (first_time or 0.0)) * sr)))]
    skip = max(0, int(round((sel.start - (first_time or 0.0)) * sr)))
    stop = None if sel.duration is None else skip + int(round(sel.duration * sr))
    return np.ascontiguousarray(audio[skip:stop], dtype=np.float32), sr


@dataclass(frozen=True)
class VideoCodec:
    """One video codec as neofield writes it: the FFmpeg encoder and its settings."""

    encoder: str
    pix_fmt: str
    containers: frozenset[str]
    crf: tuple[float, float, float] | None  # default, lowest, highest; None: lossless only
    min_side: int = 1  # smallest width or height the encoder accepts (after padding to even)

    def options(self, crf: float | None) -> dict[str, str]:
        if self.crf is None:
            return {}
        value = f"{self.crf[0] if crf is None else crf:g}"
        return {"libx264": {"crf": value, "preset": "medium"},
                "libx265": {"crf": value, "preset": "medium", "x265-params": "log-level=error"},
                "libvpx-vp9": {"crf": value, "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"},
                "libsvtav1": {"crf": value, "preset": "8"}}[self.encoder]


VIDEO_CODECS = {
    "h264": VideoCodec("libx264", "yuv420p", frozenset({".mp4", ".mov", ".mkv"}), (18, 0, 51)),
    "h265": VideoCodec("libx265", "yuv420p", frozenset({".mp4", ".mov", ".mkv"}), (20, 0, 51), min_side=16),
    "vp9": VideoCodec("libvpx-vp9", "yuv420p", frozenset({".webm", ".mkv", ".mp4"}), (32, 0, 63)),
    "av1": VideoCodec("libsvtav1", "yuv420p", frozenset({".webm", ".mkv", ".mp4"}), (30, 1, 63), min_side=4),
    "ffv1": VideoCodec("ffv1", "bgr0", frozenset({".mkv"}), None),  # exact RGB, archival
}
LOSSLESS_RGB = VideoCodec("libx264rgb", "rgb24", frozenset({".mp4", ".mov", ".mkv"}), None)
DEFAULT_VIDEO_CODEC = {".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".webm": "vp9"}
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".gif": "gif"}
# sound beside lossy pictures: AAC plays everywhere mp4 does, Opus is webm's; lossless: FLAC (ALAC in .mov)
AUDIO_CODEC = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}
LOSSLESS_AUDIO_CODEC = {".mp4": "flac", ".mov": "alac", ".mkv": "flac"}
AUDIO_BITS_PER_SECOND = {"aac": 96_000, "libopus": 64_000, "libmp3lame": 96_000}  # per channel
BT709, LIMITED_RANGE = 1, 1  # AVColorSpace/Primaries/TRC BT.709, AVColorRange MPEG ("tv")
TIME_BASE = Fraction(1, 90_000)  # fine enough that every frame time, and the last frame's end, is exact
# what a plain write (no --lossless, default codec) changes: the caller says so beside its quality figures
LOSSY_DEFAULT = frozenset({".mp4", ".mov", ".mkv", ".webm", ".gif", ".ogg", ".opus", ".m4a", ".mp3",
                           ".jpg", ".jpeg", ".webp"})


def is_lossy(path: str | Path, codec: str | None = None, lossless: bool = False) -> bool:
    """Whether writing ``path`` with these options changes the pixels or samples.

    Exact: wav (float), flac (24-bit), png, bmp, tiff, and video with
    ``lossless`` or ``codec="ffv1"``. A gif is always lossy (256 colours).
    """
    suffix = Path(path).suffix.lower()
    if suffix in CONTAINER_FORMATS and suffix != ".gif" and (lossless or codec == "ffv1"):
        return False
    return suffix in LOSSY_DEFAULT


def keeps_sample_aspect_ratio(path: str | Path, codec: str | None = None, lossless: bool = False) -> bool:
    """Whether a non-square pixel shape survives in this output.

    mp4 and mov store it in the container (``pasp``), H.264 and H.265 in the
    bitstream. Matroska reads it from ``AVStream.sample_aspect_ratio``, which
    PyAV cannot set, so VP9, AV1 and FFV1 in .mkv/.webm lose it; gif and
    pictures have none.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".mp4", ".mov"):
        return True
    if suffix in (".mkv", ".webm"):
        return (lossless and codec in (None, "h264")) or (codec or DEFAULT_VIDEO_CODEC[suffix]) in ("h264", "h265")
    return False


def video_codec(suffix: str, codec: str | None, lossless: bool) -> VideoCodec | None:
    """The codec a video file gets (None for gif), checked against its container."""
    if suffix == ".gif":
        if codec is not None or lossless:
            raise NeofieldError("a .gif has its own codec: --codec and --lossless do not apply")
        return None
    if lossless and codec in (None, "h264"):
        if suffix not in LOSSLESS_RGB.containers:
            raise NeofieldError(f"--lossless writes H.264 RGB into .mp4, .mkv or .mov, not {suffix} "
                                "(or use --codec ffv1 in .mkv)")
        return LOSSLESS_RGB
    name = codec or DEFAULT_VIDEO_CODEC[suffix]
    if name not in VIDEO_CODECS:
        raise NeofieldError(f"--codec must be one of {', '.join(VIDEO_CODECS)}, not {name!r}")
    chosen = VIDEO_CODECS[name]
    if lossless and chosen.crf is not None:
        raise NeofieldError(f"--lossless writes H.264 RGB or FFV1, not {name}")
    if suffix not in chosen.containers:
        raise NeofieldError(f"{name} does not go into {suffix}: use {', '.join(sorted(chosen.containers))}")
    return chosen


def write_video(path: Path, frames: Iterable[np.ndarray], *args, **kwargs) -> None:
    """Encode RGB frames (and optional sound) into ``path``: see :func:`_write_video`. What the codec
    or container refuses (a size, a rate, a channel layout it cannot hold) is one line."""
    with _writer_errors(path):
        _write_video(path, frames, *args, **kwargs)


@contextlib.contextmanager
def _writer_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except (av.FFmpegError, sf.SoundFileError) as e:
        raise NeofieldError(f"{path.suffix or 'the output'} cannot hold this: {str(e).strip()[:200]}") from None


def _write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    *,
    codec: str | None = None,
    crf: float | None = None,
    lossless: bool = False,
    sample_aspect_ratio: tuple[int, int] = (1, 1),
    end_time: float | None = None,
    frames_total: int | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Encode RGB frames (and optional sound) into the container ``path``'s suffix names.

    By default what plays everywhere: H.264 4:2:0 (crf 18) + AAC in .mp4/.mov/.mkv,
    VP9 + Opus in .webm, a palette GIF without sound (``audio`` is ignored).
    ``lossless`` writes H.264 RGB at qp 0 + FLAC (ALAC in .mov), which stores
    the frames exactly, so the file shows the field's error and not the
    container's. 4:2:0 needs even sizes: an odd width or height gets one
    replicated edge column or row (``psnr`` crops it). Frames are stamped on a
    1/90,000 s clock and the last one lasts until ``end_time`` (default: one
    frame), so a rate that does not divide the clip still gives its exact
    length; a gif counts in hundredths of a second. ``frames`` may be a
    generator: a long decode never holds the whole clip in memory, and the
    sound is interleaved with it as it goes. ``frames_total`` is optional: the
    last frame is found at the end, whatever the count. ``metadata`` becomes
    container tags (a gif has none).
    """
    suffix = path.suffix.lower()
    if suffix not in CONTAINER_FORMATS:
        raise NeofieldError(f"cannot write video into {suffix}: use {', '.join(CONTAINER_FORMATS)}")
    chosen = video_codec(suffix, codec, lossless)
    if crf is not None and (chosen is None or chosen.crf is None or not chosen.crf[1] <= crf <= chosen.crf[2]):
        if chosen is None or chosen.crf is None:
            raise NeofieldError("--crf applies to lossy codecs (h264, h265, vp9, av1)")
        raise NeofieldError(f"--crf for {chosen.encoder} must be in [{chosen.crf[1]:g}, {chosen.crf[2]:g}]")
    if fps <= 0 or not math.isfinite(fps):
        raise NeofieldError(f"the frame rate must be > 0, not {float(fps):g}")
    if audio is not None and suffix != ".gif" and not sample_rate:
        raise NeofieldError("sound needs a sample rate")
    rate = Fraction(fps).limit_denominator(1001000)
    options = {"movflags": "+faststart"} if suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", format=CONTAINER_FORMATS[suffix], options=options) as out:
        out.metadata.update(metadata or {})
        sound = None
        if audio is not None and suffix != ".gif":
            astream = _audio_stream(out, (LOSSLESS_AUDIO_CODEC if lossless else AUDIO_CODEC)[suffix],
                                    audio.shape[1], sample_rate)
            sound = _AudioWriter(out, astream, audio, sample_rate)
        writer = _FrameWriter(out, chosen, rate, crf, sample_aspect_ratio, end_time)
        for frame in frames:
            writer.write(frame)
            if sound is not None:  # the sound up to this frame's end, so the file interleaves as it plays
                sound.write_until(writer.count / rate)
        writer.close()
        if sound is not None:
            sound.close()


class _FrameWriter:
    """Frames into one video stream: sized from the first frame, padded to even
    sizes for 4:2:0, timed on ``TIME_BASE``. The last packets are held back
    until the end, so the last frame can last until ``end_time`` without the
    frame count being known in advance."""

    HOLD = 16  # packets held back: more than any encoder's reordering depth (x264, x265: 3 to 4 B-frames)

    def __init__(self, out, codec: VideoCodec | None, rate: Fraction, crf: float | None, sar: tuple[int, int],
                 end_time: float | None):
        self.out, self.codec, self.rate, self.crf, self.sar, self.end_time = out, codec, rate, crf, sar, end_time
        self.stream = self.palette = None
        self.count = 0
        self.frame_ticks = round(1 / rate / TIME_BASE)
        self.held: deque = deque()
        self.released = False

    def _pts(self, index: int) -> int:
        return round(index / self.rate / TIME_BASE)

    def _open(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        self.even = self.codec is not None and self.codec.pix_fmt == "yuv420p"
        if self.even:
            h, w = h + h % 2, w + w % 2
        if self.codec is not None and min(w, h) < self.codec.min_side:
            side = self.codec.min_side
            raise NeofieldError(f"{self.codec.encoder} needs pictures of at least {side}x{side}, not {w}x{h}: "
                                "use --codec h264")
        encoder = "gif" if self.codec is None else self.codec.encoder
        self.stream = self.out.add_stream(encoder, rate=self.rate)
        self.stream.width, self.stream.height = w, h
        self.stream.pix_fmt = "pal8" if self.codec is None else self.codec.pix_fmt
        if self.codec is not None:
            self.stream.codec_context.time_base = TIME_BASE
            self.stream.time_base = TIME_BASE
            self.stream.options = self.codec.options(self.crf) if self.codec.crf else (
                {"qp": "0", "preset": "medium"} if self.codec is LOSSLESS_RGB else {})
            if self.codec.encoder == "libx265" and self.out.format.name in ("mp4", "mov"):
                self.stream.codec_tag = "hvc1"  # what Apple's players want for H.265 in mp4/mov
            if self.codec.encoder == "libvpx-vp9":
                self.stream.bit_rate = 0  # constant quality: crf alone sets the rate
            if self.even:  # say which YUV this is: untagged, browsers guess BT.709 for HD and FFmpeg BT.601
                cc = self.stream.codec_context
                cc.colorspace = cc.color_primaries = cc.color_trc = BT709
                cc.color_range = LIMITED_RANGE
        if tuple(self.sar) != (1, 1):
            self.stream.codec_context.sample_aspect_ratio = Fraction(*self.sar)
        if self.codec is None:
            self.palette = _palette_graph(w, h, self.rate)

    def write(self, frame: np.ndarray) -> None:
        if self.stream is None:
            self._open(frame)
        if self.even and (frame.shape[0] % 2 or frame.shape[1] % 2):
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if self.even:
            vf = vf.reformat(format=self.codec.pix_fmt, dst_colorspace=Colorspace.ITU709)
        if self.palette is not None:  # GIF: frames go through palettegen/paletteuse, out at the end
            vf.pts, vf.time_base = self.count, 1 / self.rate
            self.palette.push(vf)
        else:
            vf.pts, vf.time_base = self._pts(self.count), TIME_BASE
            self._hold(self.stream.encode(vf))
        self.count += 1

    def _hold(self, packets) -> None:
        for packet in packets:
            if self.codec is not None and packet.pts is not None:
                packet.duration = round(Fraction(self.frame_ticks) * TIME_BASE / packet.time_base)
            self.held.append(packet)
        while len(self.held) > self.HOLD:
            self._release()

    def _release(self) -> None:
        if not self.released:
            _repair_dts(self.held, self.HOLD * self.frame_ticks * TIME_BASE)
            self.released = True
        self.out.mux(self.held.popleft())

    def close(self) -> None:
        if self.stream is None:
            raise NeofieldError("no video frames to write")
        if self.palette is not None:
            if self.end_time is not None:  # the gif muxer's own option: hundredths of a second
                last = math.floor(Fraction(self.count - 1) * 100 / self.rate + Fraction(1, 2))
                self.out.options["final_delay"] = str(max(1, round(self.end_time * 100) - last))
            self.palette.push(None)
            for vf in _drain(self.palette):
                self._hold(self.stream.encode(vf))
        self._hold(self.stream.encode(None))
        if self.end_time is not None and self.codec is not None:
            last = self._pts(self.count - 1)
            for packet in self.held:
                if packet.pts is not None and round(packet.pts * packet.time_base / TIME_BASE) == last:
                    ticks = max(1, round(self.end_time / TIME_BASE) - last)
                    packet.duration = max(1, round(Fraction(ticks) * TIME_BASE / packet.time_base))
        while self.held:
            self._release()


def _repair_dts(packets, reach: Fraction) -> None:
    """Give the first packets of a stream decode times that go up, never pass
    their presentation times and lag them by less than ``reach`` seconds, if
    the encoder's do not: libx265 leaves them uninitialised in a one- or
    two-frame clip, and the mp4 muxer refuses them."""
    stamps = [(p.pts, p.dts) for p in packets]
    if not stamps or any(pts is None for pts, _ in stamps):
        return
    ordered = sorted(pts for pts, _ in stamps)
    lag = reach / packets[0].time_base
    dts = [d for _, d in stamps]
    if all(d is not None and o - lag <= d <= pts for o, (pts, d) in zip(ordered, stamps)) and \
            all(a < b for a, b in pairwise(dts)):
        return
    shift = max(0, *(o - pts for o, (pts, _) in zip(ordered, stamps)))
    for packet, o in zip(packets, ordered):
        packet.dts = o - shift


def _palette_graph(width: int, height: int, rate: Fraction) -> av.filter.Graph:
    """FFmpeg's two-pass GIF palette (palettegen + paletteuse): far better colour than a fixed 3-3-2 one."""
    graph = av.filter.Graph()
    src = graph.add_buffer(width=width, height=height, format="rgb24", time_base=1 / rate)
    split, gen = graph.add("split"), graph.add("palettegen", "stats_mode=full")
    use, sink = graph.add("paletteuse", "dither=sierra2_4a"), graph.add("buffersink")
    src.link_to(split)
    split.link_to(gen, 0, 0)
    split.link_to(use, 1, 0)
    gen.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    return graph


def _drain(graph: av.filter.Graph):
    while True:
        try:
            yield graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            return


def _audio_stream(out, codec: str, channels: int, sample_rate: int):
    """An audio stream for ``codec`` at the rate it supports nearest above ``sample_rate``
    (Opus always at 48 kHz: its decoders give 48 kHz whatever was written)."""
    rates = av.codec.Codec(codec, "w").audio_rates
    rate = sample_rate
    if codec == "libopus":
        rate = 48_000
    elif rates and sample_rate not in rates:
        above = [r for r in rates if r >= sample_rate]
        rate = min(above) if above else max(rates)
    stream = out.add_stream(codec, rate=rate, layout=_layout(channels))
    if codec in AUDIO_BITS_PER_SECOND:
        stream.bit_rate = AUDIO_BITS_PER_SECOND[codec] * channels
    return stream


LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _layout(channels: int) -> str:
    if channels not in LAYOUTS:
        raise NeofieldError(f"cannot write {channels}-channel audio into a video file (1 to 8 channels)")
    return LAYOUTS[channels]


def mux_audio(out, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Encode ``(samples, channels)`` float audio at ``sample_rate`` into an open output's
    audio ``stream``, converting to the stream's sample format and rate, and flush it."""
    _AudioWriter(out, stream, audio, sample_rate).close()


class _AudioWriter:
    """Sound into one audio stream a piece at a time, resampled to the stream's
    format and rate, so that it can interleave with the pictures."""

    CHUNK = 4096

    def __init__(self, out, stream, audio: np.ndarray, sample_rate: int):
        self.out, self.stream, self.sample_rate = out, stream, sample_rate
        self.resampler = av.AudioResampler(format=stream.codec_context.format, layout=stream.layout,
                                           rate=stream.rate)
        self.planar = np.ascontiguousarray(np.clip(audio, -1, 1).T.astype(np.float32))
        self.done = 0

    def write_until(self, seconds: float) -> None:
        stop = self.planar.shape[1]
        if math.isfinite(seconds):
            stop = min(stop, math.ceil(seconds * self.sample_rate))
        while self.done < stop:
            end = min(stop, self.done + self.CHUNK)
            frame = av.AudioFrame.from_ndarray(self.planar[:, self.done:end], format="fltp",
                                               layout=self.stream.layout)
            frame.sample_rate = self.sample_rate
            frame.pts, frame.time_base = self.done, Fraction(1, self.sample_rate)  # the muxer needs timestamps
            for f in self.resampler.resample(frame):
                self._mux(self.stream.encode(f))
            self.done = end

    def close(self) -> None:
        self.write_until(math.inf)
        for f in self.resampler.resample(None):
            self._mux(self.stream.encode(f))
        self._mux(self.stream.encode(None))

    def _mux(self, packets) -> None:
        size = self.stream.codec_context.frame_size
        for packet in packets:
            if self.stream.codec_context.name == "aac" and size and packet.duration and packet.time_base:
                # AAC's last frame is padded to a full 1024 samples. mp4 keeps the real length in
                # its sample table; Matroska needs it said as "discard padding" on the packet.
                real = round(packet.duration * packet.time_base * self.stream.rate)
                if real < size and not packet.has_sidedata("skip_samples"):
                    padding = PacketSideData(packet_sidedata_type_from_literal("skip_samples"), 10)
                    padding.update(struct.pack("<IIBB", 0, size - real, 0, 0))
                    packet.set_sidedata(padding)
            self.out.mux(packet)


SOUNDFILE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}
# Vorbis I's channel order (its spec, section 4.3.9) as indices into FFmpeg's / WAV's order, by channel
# count: libsndfile writes channels as given, so they are put in Vorbis order for other players to read right
VORBIS_ORDER = {3: [0, 2, 1], 5: [0, 2, 1, 3, 4], 6: [0, 2, 1, 4, 5, 3], 7: [0, 2, 1, 5, 6, 4, 3],
                8: [0, 2, 1, 6, 7, 4, 5, 3]}
FFMPEG_AUDIO = {".opus": ("ogg", "libopus"), ".m4a": ("ipod", "aac"), ".mp3": ("mp3", "libmp3lame")}


def write_audio(path: Path, audio: np.ndarray, sample_rate: int, metadata: dict[str, str] | None = None) -> None:
    """Write sound: wav as 32-bit float (exact), flac as 24-bit, ogg as Vorbis;
    opus, m4a (AAC) and mp3 through FFmpeg. ``metadata`` goes into the file's tags."""
    with _writer_errors(path):
        _write_audio(path, audio, sample_rate, metadata)


def _write_audio(path: Path, audio: np.ndarray, sample_rate: int, metadata: dict[str, str] | None) -> None:
    suffix = path.suffix.lower()
    if suffix not in AUDIO_OUT_SUFFIXES:
        raise NeofieldError(f"cannot write sound into {suffix}: use {', '.join(sorted(AUDIO_OUT_SUFFIXES))}")
    if suffix in FFMPEG_AUDIO:
        fmt, codec = FFMPEG_AUDIO[suffix]
        with av.open(str(path), "w", format=fmt) as out:
            out.metadata.update(metadata or {})
            mux_audio(out, _audio_stream(out, codec, audio.shape[1], sample_rate), audio, sample_rate)
        return
    fmt, subtype = SOUNDFILE_FORMATS[suffix]
    with sf.SoundFile(str(path), "w", sample_rate, audio.shape[1], subtype=subtype, format=fmt) as f:
        for key, value in (metadata or {}).items():
            if key in ("comment", "title"):
                setattr(f, key, value)
        if suffix == ".ogg" and audio.shape[1] in VORBIS_ORDER:
            audio = audio[:, VORBIS_ORDER[audio.shape[1]]]
        f.write(np.clip(audio, -1, 1))


def write_image(path: Path, image: np.ndarray) -> None:
    """Write one RGB frame; the format follows the suffix (png is lossless)."""
    iio.imwrite(path, image, extension=path.suffix.lower())


SEQUENCE_FIELD = re.compile(r"%(0\d+)?d")  # printf's %d or %05d, nothing else


def write_image_sequence(pattern: str, frames: Iterable[np.ndarray], *, force: bool = False,
                         frames_total: int | None = None) -> list[Path]:
    """Write frames as numbered pictures, ``frames/%05d.png`` style, numbered from 0.

    All-or-nothing like every other output: the pictures are written into a
    temporary folder beside the target and moved into place only once all of
    them are made; existing files are refused unless ``force``.
    """
    target = Path(pattern)
    if len(SEQUENCE_FIELD.findall(target.name)) != 1 or target.name.count("%") != 1:
        raise NeofieldError(f"{pattern!r} needs exactly one frame-number field such as %05d")
    if target.suffix.lower() not in IMAGE_SUFFIXES:
        raise NeofieldError(f"{pattern!r}: pictures are written as {', '.join(sorted(IMAGE_SUFFIXES))}")
    width = SEQUENCE_FIELD.search(target.name)[1]
    if width and int(width) > 12:  # %0999999d would name each picture with a million digits
        raise NeofieldError(f"{pattern[:60]!r}: a frame number of at most 12 digits (%012d)")
    folder = target.parent
    if not folder.is_dir():
        raise NeofieldError(f"output folder {folder} does not exist")

    def name(i: int) -> str:
        return target.name % i

    if frames_total is not None and not force:
        for i in range(frames_total):
            if (folder / name(i)).exists():
                raise NeofieldError(f"{folder / name(i)} already exists (pass --force to overwrite it)")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.stem.split('%')[0] or 'frames'}.", dir=folder))
    try:
        written = []
        for i, frame in enumerate(frames):
            if not force and (folder / name(i)).exists():
                raise NeofieldError(f"{folder / name(i)} already exists (pass --force to overwrite it)")
            write_image(staging / name(i), frame)
            written.append(name(i))
        paths = []
        try:
            for n in written:
                os.replace(staging / n, folder / n)
                paths.append(folder / n)
        except OSError as exc:
            if not force:  # the ones already moved were new: take them back out
                for moved in paths:
                    moved.unlink(missing_ok=True)
            raise NeofieldError(f"cannot move the pictures into {folder} ({_first_line(exc)})") from None
        return paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_tags(path: str | Path) -> dict[str, str]:
    """A file's tags, container-level and its streams' (Ogg keeps them there), with
    lower-case keys (Matroska reads them back upper-case); empty for non-media."""
    try:
        with av.open(str(path)) as container:
            tags = {}
            for source in (*(s.metadata for s in container.streams), container.metadata):
                tags.update({k.lower(): v for k, v in source.items()})
            return tags
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
