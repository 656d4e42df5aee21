"""Signal: what was measured, where, and how positions map to field coordinates.

Conventions (they make any-resolution decoding exact, and are stored in every
bundle):

* **Physical positions.** ``x`` and ``y`` are fractions of the frame width and
  height in [0, 1]; pixel ``i`` of a ``W``-wide grid sits at its centre,
  ``(i + 0.5) / W``. Time is in seconds from the start of the encoded piece;
  frame ``k`` sits at the centre of its display interval, ``(k + 0.5) / fps``,
  and audio sample ``n`` at ``(n + 0.5) / sample_rate``. A grid at another
  resolution is simply the same rule with another ``W``, ``fps`` or rate, so
  scale 1 reproduces the training grid exactly and scale 2 interleaves it.
* **Field coordinates.** One affine map per axis, ``field = scale * physical +
  offset``. Following the NeoMLP paper: video x, y, t span [-1, 1]; audio time
  runs at 200/7 units per second, centred on 0, so the 7 s Bach clip spans
  [-100, 100]. An audio-visual field shares the audio time axis and puts audio
  points at x = y = 0.
* **Values.** 8-bit video ``v`` becomes ``v / 127.5 - 1``. Audio is divided
  by its peak so that it spans [-1, 1] too: film soundtracks are often quiet
  (Big Buck Bunny's peaks near 0.1), and a field fitting them at full scale
  spends its precision on silence. The divisor is stored in the bundle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from .errors import NeofieldError
from .media import Media
from .sampling import ErrorMap

AUDIO_UNITS_PER_SECOND = 200.0 / 7.0  # the paper's [-100, 100] for 7 s of Bach


@dataclass(frozen=True)
class Axis:
    """An affine map from a physical position to a field coordinate."""

    scale: float
    offset: float

    def __call__(self, physical: torch.Tensor) -> torch.Tensor:
        return physical * self.scale + self.offset


@dataclass(frozen=True)
class ValueMap:
    """An affine map from stored sample values to the field's output range."""

    scale: float
    offset: float

    def to_field(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.scale + self.offset

    def to_raw(self, field: torch.Tensor) -> torch.Tensor:
        return (field - self.offset) / self.scale

    def to_dict(self) -> dict:
        return asdict(self)


VIDEO_VALUES = ValueMap(scale=1 / 127.5, offset=-1.0)
MIN_AUDIO_PEAK = 1e-3  # below this (silence, -60 dBFS) the scale stops growing


def audio_value_map(audio: np.ndarray) -> ValueMap:
    """Scale audio by its peak so the field sees the full [-1, 1] range."""
    peak = float(np.abs(audio).max()) if audio.size else 1.0
    return ValueMap(scale=1.0 / max(peak, MIN_AUDIO_PEAK), offset=0.0)


@dataclass(frozen=True)
class CoordinateMap:
    """The field's input axes: (x, y, t) for pictures, (t,) for sound."""

    t: Axis
    x: Axis | None = None
    y: Axis | None = None

    @property
    def in_features(self) -> int:
        return 1 if self.x is None else 3

    def coords(self, t: torch.Tensor, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Field coordinates ``(N, in_features)`` of physical positions.

        ``t`` is in seconds; ``x``/``y`` are fractions of the frame. Points
        given without ``x``/``y`` on a spatial field (audio points of an
        audio-visual field) sit at field x = y = 0.
        """
        ft = self.t(t)
        if self.x is None:
            return ft[:, None]
        fx = self.x(x) if x is not None else torch.zeros_like(ft)
        fy = self.y(y) if y is not None else torch.zeros_like(ft)
        return torch.stack([fx, fy, ft], dim=1)

    def to_dict(self) -> dict:
        return {k: (asdict(v) if v is not None else None) for k, v in (("x", self.x), ("y", self.y), ("t", self.t))}

    @classmethod
    def from_dict(cls, d: dict) -> CoordinateMap:
        ax = {k: Axis(**d[k]) if d.get(k) else None for k in ("x", "y", "t")}
        return cls(t=ax["t"], x=ax["x"], y=ax["y"])

    def time_span(self, duration: float) -> tuple[float, float]:
        """Field-time interval covered by ``[0, duration]`` seconds."""
        return self.t.offset, self.t.scale * duration + self.t.offset


def video_pixel_grid(width: int, height: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Physical x, y of every pixel centre of a ``width x height`` frame, row-major."""
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xx.reshape(-1), yy.reshape(-1)


def centre_times(count: int, rate: float, start: float = 0.0, first: int = 0,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Seconds at the centres of samples ``first .. first+count`` at ``rate`` Hz, in float64
    so that long audio keeps sub-sample precision before the map to field time."""
    n = torch.arange(first, first + count, device=device, dtype=torch.float64)
    return (start + (n + 0.5) / rate)


class Draw(NamedTuple):
    """A step's points: field coordinates ``(B, I)``, targets and loss mask ``(B, O)``; drawn by an error
    map, each point's importance weight ``(B,)`` and the video points' tiles (else both None)."""

    coords: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor | None = None
    tile: torch.Tensor | None = None


class Signal:
    """A decoded clip, sound or image, ready to be sampled for fitting.

    Holds the values compactly (uint8 video, float32 audio) and generates
    coordinates on the fly, so a 43-million-point clip costs its pixels and
    nothing more.
    """

    def __init__(self, media: Media, audio_share: float | None = None):
        self.media = media
        self.kind = media.kind
        # contiguous (a no-op for decoded media), so that a strided view such as every other frame samples too
        self.video = torch.from_numpy(np.ascontiguousarray(media.video)) if media.video is not None else None
        self.audio = torch.from_numpy(np.ascontiguousarray(media.audio)) if media.audio is not None else None
        self.fps = media.fps
        self.sample_rate = media.sample_rate
        self.duration = max(
            len(media.video) / media.fps if media.video is not None else 0.0,
            len(media.audio) / media.sample_rate if media.audio is not None else 0.0,
        )
        self.coordinate_map = default_coordinate_map(self.kind, self.duration)
        self.value_maps: dict[str, ValueMap] = {}
        self.outputs: dict[str, tuple[int, int]] = {}  # output index range of each modality
        if media.video is not None:
            self.value_maps["video"] = VIDEO_VALUES
            self.outputs["video"] = (0, 3)
        if media.audio is not None:
            self.value_maps["audio"] = audio_value_map(media.audio)
            self.outputs["audio"] = (self.video_channels, self.video_channels + self.audio_channels)
        n_v, n_a = self.n_video_points, self.n_audio_points
        if audio_share is None:  # the paper's i.i.d. draw over all points
            audio_share = n_a / (n_a + n_v)
        if not 0.0 <= audio_share <= 1.0:
            raise NeofieldError("--audio-share must be in [0, 1]")
        self.audio_share = audio_share if (n_a and n_v) else float(n_a > 0)

    # ---- sizes -----------------------------------------------------------
    @property
    def video_channels(self) -> int:
        return 3 if self.video is not None else 0

    @property
    def audio_channels(self) -> int:
        return self.audio.shape[1] if self.audio is not None else 0

    @property
    def out_features(self) -> int:
        return self.video_channels + self.audio_channels

    @property
    def n_video_points(self) -> int:
        return 0 if self.video is None else int(np.prod(self.video.shape[:3]))

    @property
    def n_audio_points(self) -> int:
        return 0 if self.audio is None else self.audio.shape[0]

    @property
    def n_points(self) -> int:
        return self.n_video_points + self.n_audio_points

    def geometry(self) -> dict:
        """The original grid, as stored in bundles."""
        g: dict = {"duration": self.duration}
        if self.video is not None:
            f, h, w, _ = self.video.shape
            g["video"] = {"width": w, "height": h, "frames": f, "fps": self.fps, "still": self.media.still}
            # how the source was shown: the frames are stored upright (rotation already applied), with
            # the pixel shape written back on decode; a variable-rate source was resampled to fps
            for key in ("rotation", "sample_aspect_ratio", "vfr"):
                value = getattr(self.media, key, None)
                if value not in (None, 0, False, (1, 1)):
                    g["video"][key] = list(value) if isinstance(value, tuple) else value
        if self.audio is not None:
            g["audio"] = {"sample_rate": self.sample_rate, "channels": self.audio_channels,
                          "samples": self.n_audio_points}
        return g

    # ---- sampling ----------------------------------------------------------
    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``batch`` points i.i.d. with replacement, uniformly over the whole signal.

        Returns field coordinates ``(B, I)``, target values ``(B, O)`` and a
        loss mask ``(B, O)`` that is 1 on the outputs of each point's own
        modality (video points: RGB; audio points: the audio channels).
        """
        return self.draw(batch, generator)[:3]

    def draw(self, batch: int, generator: torch.Generator, errors: ErrorMap | None = None) -> Draw:
        """Draw ``batch`` points as :meth:`sample` does; with ``errors``, the pictures' points by the
        error map (the sound's stay uniform), each weighted so that a weighted mean is the plain MSE.

        Video points come first, then audio: ``Draw.tile`` holds the video points' tiles.
        """
        if 0 < self.audio_share < 1:  # each point is audio with probability audio_share
            n_audio = int(torch.binomial(torch.tensor(float(batch)), torch.tensor(self.audio_share),
                                         generator=generator).item())
        else:
            n_audio = int(batch * self.audio_share)
        coords, values, masks = [], [], []
        weight = tile = None
        for modality, n in (("video", batch - n_audio), ("audio", n_audio)):
            if not n:
                continue
            if modality == "audio":
                c, v = self._sample_audio(n, generator)
            elif errors is None:
                c, v = self._sample_video(n, generator)
            else:
                frame, row, col, tile, weight = errors.draw(n, generator)
                c, v = self._video_points(frame, row, col)
            coords.append(c)
            values.append(self._pad(v, modality))
            masks.append(self._mask(n, modality))
        if errors is not None:  # importance weights: the video's, then 1 for each sound point
            weight = torch.cat([weight if weight is not None else torch.ones(0), torch.ones(n_audio)])
            tile = tile if tile is not None else torch.zeros(0, dtype=torch.long)
        return Draw(torch.cat(coords), torch.cat(values), torch.cat(masks), weight, tile)

    def _sample_video(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        f, h, w, _ = self.video.shape
        idx = torch.randint(0, f * h * w, (n,), generator=g)
        frame, rest = idx // (h * w), idx % (h * w)
        return self._video_points(frame, rest // w, rest % w)

    def _video_points(self, frame: torch.Tensor, row: torch.Tensor, col: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Field coordinates and values of the pixels at ``frame``, ``row``, ``col``."""
        _, h, w, _ = self.video.shape
        t = (frame.double() + 0.5) / self.fps
        coords = self.coordinate_map.coords(t.float(), (col.float() + 0.5) / w, (row.float() + 0.5) / h)
        values = self.value_maps["video"].to_field(self.video.view(-1, 3)[(frame * h + row) * w + col].float())
        return coords.float(), values

    def _sample_audio(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.n_audio_points, (n,), generator=g)
        t = (idx.double() + 0.5) / self.sample_rate
        coords = self.coordinate_map.coords(t).float()
        return coords, self.value_maps["audio"].to_field(self.audio[idx])

    def _pad(self, values: torch.Tensor, modality: str) -> torch.Tensor:
        out = torch.zeros(values.shape[0], self.out_features)
        out[:, slice(*self.outputs[modality])] = values
        return out

    def _mask(self, n: int, modality: str) -> torch.Tensor:
        mask = torch.zeros(n, self.out_features)
        mask[:, slice(*self.outputs[modality])] = 1
        return mask

    def layout(self) -> dict:
        """How field outputs and coordinates relate to this signal: what a decoder needs."""
        return {
            "modality": self.kind,
            "geometry": self.geometry(),
            "coordinates": self.coordinate_map.to_dict(),
            "values": {k: v.to_dict() for k, v in self.value_maps.items()},
            "outputs": {k: list(v) for k, v in self.outputs.items()},
        }


def default_coordinate_map(kind: str, duration: float) -> CoordinateMap:
    """The paper's coordinate scales for each kind of signal (see module docstring)."""
    if kind == "audio" or kind == "audiovisual":
        t = Axis(AUDIO_UNITS_PER_SECOND, -AUDIO_UNITS_PER_SECOND * duration / 2)
    else:
        t = Axis(2.0 / duration, -1.0)
    if kind == "audio":
        return CoordinateMap(t=t)
    return CoordinateMap(t=t, x=Axis(2.0, -1.0), y=Axis(2.0, -1.0))


SPECTRUM_BLOCK = 4096  # samples per block of the averaged power spectrum (~0.1 s at 44.1 kHz)
SPECTRUM_ROWS = 256  # blocks per transform (~1 M samples)


def spectral_centroid(audio: np.ndarray, sample_rate: int, block: int = SPECTRUM_BLOCK) -> float:
    """Power-weighted mean frequency of a sound, in Hz (channels mixed to mono).

    The power spectrum is averaged over Hann-windowed blocks, transformed
    ``SPECTRUM_ROWS`` blocks at a time, so a long file costs one pass and its
    transform no more memory than those blocks.
    """
    mono = np.asarray(audio, dtype=np.float32).reshape(len(audio), -1).mean(axis=1)
    block = min(block, max(len(mono), 2))
    rows = len(mono) // block
    if rows == 0:
        return 0.0
    frames, window = mono[:rows * block].reshape(rows, block), np.hanning(block).astype(np.float32)
    power = np.zeros(block // 2 + 1)
    for i in range(0, rows, SPECTRUM_ROWS):
        power += (np.abs(np.fft.rfft(frames[i:i + SPECTRUM_ROWS] * window, axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(block, 1.0 / sample_rate)
    total = power.sum()
    return float((freqs * power).sum() / total) if total > 0 else 0.0


def audio_rff_sigma(audio: np.ndarray, sample_rate: int, lo: float = 5.0, hi: float = 200.0) -> float:
    """RFF sigma for the audio time axis: the sound's spectral centroid in cycles per field unit.

    Gaussian frequencies with that spread put most Fourier features where the
    sound's energy is. It recovers what was found by hand (docs/cpu-defaults.md):
    Bach's cello (centroid 445 Hz, sigma 15.6; 10-20 measured best) and Big
    Buck Bunny's ambience (1,440 Hz, sigma 50; 60 measured best, 10 stayed at
    silence). Clamped to ``[lo, hi]`` for silence and for noise.
    """
    centroid = spectral_centroid(audio, sample_rate) / AUDIO_UNITS_PER_SECOND
    return float(np.clip(centroid, lo, hi))
