"""Writing video: frames (and their sound) into files that play (H.264 4:2:0 with BT.709 tags in mp4, VP9 +
Opus in webm, gif), or the exact RGB file measurement uses (H.264 RGB qp 0 + FLAC). Written under a
temporary name and renamed once the file is whole.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Colorspace

from ..errors import NeofieldError
from .sound_writer import (
    _audio_stream,
    _AudioWriter,
    writer_errors,
)


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


def write_video(path: str | Path, frames: Iterable[np.ndarray], *args, **kwargs) -> None:
    """Encode RGB frames (and optional sound) into ``path``: see :func:`_write_video`. What the codec
    or container refuses (a size, a rate, a channel layout it cannot hold) is one line."""
    path = Path(path)
    with writer_errors(path):
        _write_video(path, frames, *args, **kwargs)


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
    # bitexact: no random segment id, date or library version in the container, so that the same frames
    # make the same file (x264's own output still varies from run to run: docs/format.md, "Decoding")
    options = {"fflags": "+bitexact", **({"movflags": "+faststart"} if suffix in (".mp4", ".mov") else {})}
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
