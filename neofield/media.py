"""Media I/O: read any clip, image or sound into arrays, and write arrays back.

Everything format-specific lives here, behind :func:`read_media` and the two
writers, so the rest of neofield only sees numpy arrays:

* video: ``uint8`` array ``(frames, height, width, 3)`` in RGB. It stays uint8
  in memory: a float32 copy of a long clip would be four times larger.
* audio: ``float32`` array ``(samples, channels)`` in [-1, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np
import soundfile as sf

from .errors import NeofieldError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".m4a", ".aac", ".aiff", ".aif"}
VIDEO_OUT_SUFFIXES = {".mp4", ".mkv", ".mov"}
AUDIO_OUT_SUFFIXES = {".wav", ".flac", ".ogg"}

logging.getLogger("libav").setLevel(logging.ERROR)


@dataclass
class Media:
    """Decoded media: a video track, an audio track, or both."""

    video: np.ndarray | None = None  # (frames, height, width, 3) uint8 RGB
    fps: float | None = None
    audio: np.ndarray | None = None  # (samples, channels) float32 in [-1, 1]
    sample_rate: int | None = None
    still: bool = False  # a single image rather than a clip

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

    @classmethod
    def from_dict(cls, d: dict) -> Selection:
        return cls(d.get("start", 0.0), d.get("duration"), d.get("max_frames"),
                   tuple(d["resize"]) if d.get("resize") else None)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``320x180``) into ``(width, height)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise NeofieldError(f"size {text!r} is not of the form WIDTHxHEIGHT, e.g. 320x180") from None
    if w <= 0 or h <= 0:
        raise NeofieldError(f"size {text!r} must be positive")
    return w, h


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
    if selection.start < 0:
        raise NeofieldError("--start must be >= 0")
    if selection.duration is not None and selection.duration <= 0:
        raise NeofieldError("--duration must be > 0")
    if selection.max_frames is not None and selection.max_frames <= 0:
        raise NeofieldError("--max-frames must be > 0")

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
            media.video, media.fps = _decode_video(path, sel)
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


def _decode_video(path: Path, sel: Selection) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as container:
        stream = _video_streams(container)[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        fps = float(rate)
        end = None if sel.duration is None else sel.start + sel.duration
        if sel.start > 0:
            container.seek(int(sel.start / stream.time_base), stream=stream, backward=True)
        frames: list[np.ndarray] = []
        half = 0.5 / fps
        for index, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else index / fps
            if t < sel.start - half:
                continue
            if end is not None and t >= end - half:
                break
            kwargs = {}
            if sel.resize:
                kwargs = dict(width=sel.resize[0], height=sel.resize[1], interpolation="AREA")
            frames.append(frame.to_ndarray(format="rgb24", **kwargs))
            if sel.max_frames is not None and len(frames) >= sel.max_frames:
                break
    if not frames:
        return np.zeros((0, 1, 1, 3), np.uint8), fps
    return np.stack(frames), fps


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
    skip = max(0, int(round((sel.start - (first_time or 0.0)) * sr)))
    stop = None if sel.duration is None else skip + int(round(sel.duration * sr))
    return np.ascontiguousarray(audio[skip:stop], dtype=np.float32), sr


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
) -> None:
    """Encode RGB frames (and optional audio) losslessly.

    Video uses libx264rgb at qp 0, which stores RGB exactly, so the file shows
    the field's error and not the container's. Audio goes in as FLAC (16-bit).
    ``frames`` may be a generator: frames are encoded as they arrive, so a long
    decode never holds the whole clip in memory.
    """
    suffix = path.suffix.lower()
    with av.open(str(path), "w", format={".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}.get(suffix)) as out:
        vstream = None
        astream = None
        if audio is not None:
            layout = _layout(audio.shape[1])
            astream = out.add_stream("flac" if suffix != ".mov" else "alac", rate=sample_rate, layout=layout)
        for frame in frames:
            if vstream is None:
                vstream = out.add_stream("libx264rgb", rate=Fraction(fps).limit_denominator(1001000))
                vstream.height, vstream.width = frame.shape[:2]
                vstream.pix_fmt = "rgb24"
                vstream.options = {"qp": "0", "preset": "medium"}
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            out.mux(vstream.encode(vf))
        if vstream is not None:
            out.mux(vstream.encode(None))
        if astream is not None:
            mux_audio(out, astream, audio, sample_rate)


LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _layout(channels: int) -> str:
    if channels not in LAYOUTS:
        raise NeofieldError(f"cannot write {channels}-channel audio into a video file (1 to 8 channels)")
    return LAYOUTS[channels]


def mux_audio(out, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Encode ``(samples, channels)`` float audio at ``sample_rate`` into an open output's
    audio ``stream``, converting to the stream's sample format and rate, and flush it."""
    layout = stream.layout
    resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=stream.rate)
    planar = np.ascontiguousarray(np.clip(audio, -1, 1).T.astype(np.float32))
    for begin in range(0, planar.shape[1], 4096):
        frame = av.AudioFrame.from_ndarray(planar[:, begin:begin + 4096], format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts, frame.time_base = begin, Fraction(1, sample_rate)  # the muxer needs timestamps
        for f in resampler.resample(frame):
            out.mux(stream.encode(f))
    for f in resampler.resample(None):
        out.mux(stream.encode(f))
    out.mux(stream.encode(None))


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write audio: wav as 32-bit float (exact), flac as 24-bit, ogg as Vorbis."""
    suffix = path.suffix.lower()
    subtype = {".wav": "FLOAT", ".flac": "PCM_24", ".ogg": "VORBIS"}[suffix]
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[suffix]
    sf.write(str(path), np.clip(audio, -1, 1), sample_rate, subtype=subtype, format=fmt)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write one RGB frame; the format follows the suffix (png is lossless)."""
    iio.imwrite(path, image, extension=path.suffix.lower())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
