"""Reading media: any clip, image or sound FFmpeg (PyAV), imageio or soundfile can open, into :class:`Media`.

Frames come out the way players show them (a phone clip's rotation applied, a variable frame rate
resampled to its average), and a :class:`Selection` cuts the piece and the size asked for.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np
import soundfile as sf

from ..errors import NeofieldError
from .types import AUDIO_SUFFIXES, IMAGE_SUFFIXES, Media, Selection
from .types import first_line as _first_line


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
