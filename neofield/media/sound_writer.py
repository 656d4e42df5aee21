"""Writing sound: a track muxed into a video container, or a file of its own (wav, flac, ogg through
soundfile; opus, m4a, mp3 through FFmpeg), channels in each format's own order.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from av.packet import PacketSideData, packet_sidedata_type_from_literal

from ..errors import NeofieldError
from .types import AUDIO_OUT_SUFFIXES

AUDIO_BITS_PER_SECOND = {"aac": 96_000, "libopus": 64_000, "libmp3lame": 96_000}  # per channel


@contextlib.contextmanager
def writer_errors(path: Path) -> Iterator[None]:
    """FFmpeg's or soundfile's refusal to write ``path`` as one line."""
    try:
        yield
    except (av.FFmpegError, sf.SoundFileError) as e:
        raise NeofieldError(f"{path.suffix or 'the output'} cannot hold this: {str(e).strip()[:200]}") from None


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


SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sf_command, which soundfile does not wrap
SOUNDFILE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}
# Vorbis I's channel order (its spec, section 4.3.9) as indices into FFmpeg's / WAV's order, by channel
# count: libsndfile writes channels as given, so they are put in Vorbis order for other players to read right
VORBIS_ORDER = {3: [0, 2, 1], 5: [0, 2, 1, 3, 4], 6: [0, 2, 1, 4, 5, 3], 7: [0, 2, 1, 5, 6, 4, 3],
                8: [0, 2, 1, 6, 7, 4, 5, 3]}
FFMPEG_AUDIO = {".opus": ("ogg", "libopus"), ".m4a": ("ipod", "aac"), ".mp3": ("mp3", "libmp3lame")}


def write_audio(path: Path, audio: np.ndarray, sample_rate: int, metadata: dict[str, str] | None = None) -> None:
    """Write sound: wav as 32-bit float (exact), flac as 24-bit, ogg as Vorbis;
    opus, m4a (AAC) and mp3 through FFmpeg. ``metadata`` goes into the file's tags."""
    with writer_errors(path):
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
        if subtype == "FLOAT":  # libsndfile's PEAK chunk holds the time of writing: the same sound, other bytes
            sf._snd.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
        for key, value in (metadata or {}).items():
            if key in ("comment", "title"):
                setattr(f, key, value)
        if suffix == ".ogg" and audio.shape[1] in VORBIS_ORDER:
            audio = audio[:, VORBIS_ORDER[audio.shape[1]]]
        f.write(np.clip(audio, -1, 1))
