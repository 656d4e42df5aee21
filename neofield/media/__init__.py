"""Media I/O: read any clip, image or sound into arrays, and write arrays back.

Everything format-specific lives here, so the rest of neofield only sees numpy
arrays: :mod:`.reader` (:func:`read_media`), and one writer per kind of file,
:mod:`.video_writer`, :mod:`.sound_writer` and :mod:`.still_writer`
(:mod:`.types` holds :class:`Media` and :class:`Selection`).

* video: ``uint8`` array ``(frames, height, width, 3)`` in RGB. It stays uint8
  in memory: a float32 copy of a long clip would be four times larger.
* audio: ``float32`` array ``(samples, channels)`` in [-1, 1].
"""

from __future__ import annotations

import logging

from .reader import read_media, read_tags
from .sound_writer import LAYOUTS, mux_audio, write_audio
from .still_writer import write_image, write_image_sequence
from .types import (
    AUDIO_OUT_SUFFIXES,
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_OUT_SUFFIXES,
    Media,
    Selection,
    fingerprint,
    parse_size,
)
from .video_writer import (
    VIDEO_CODECS,
    is_lossy,
    keeps_sample_aspect_ratio,
    video_codec,
    write_video,
)

logging.getLogger("libav").setLevel(logging.ERROR)  # FFmpeg's warnings on odd but readable files

__all__ = ["AUDIO_OUT_SUFFIXES", "AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "LAYOUTS", "VIDEO_CODECS", "VIDEO_OUT_SUFFIXES",
           "Media", "Selection", "fingerprint", "is_lossy", "keeps_sample_aspect_ratio", "mux_audio", "parse_size",
           "read_media", "read_tags", "video_codec", "write_audio", "write_image", "write_image_sequence",
           "write_video"]
