"""What media is, to the rest of neofield: :class:`Media` (arrays of samples) and :class:`Selection` (which
piece of a source to read), with the file suffixes each kind goes by.

* video: ``uint8`` array ``(frames, height, width, 3)`` in RGB. It stays uint8
  in memory: a float32 copy of a long clip would be four times larger.
* audio: ``float32`` array ``(samples, channels)`` in [-1, 1].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .. import options

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".m4a", ".aac", ".aiff", ".aif"}
VIDEO_OUT_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".gif"}
AUDIO_OUT_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".m4a", ".mp3"}


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


def fingerprint(media: Media) -> str:
    """SHA-256 of the decoded samples: lets ``psnr`` check it was given the right original."""
    h = hashlib.sha256()
    for arr in (media.video, media.audio):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``320x180``) into ``(width, height)``."""
    return options.parse_size(text)


def first_line(exc: BaseException) -> str:
    """A library's error in one line, for the one-line messages neofield prints."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
