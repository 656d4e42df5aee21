"""Checks for every number and name a user can pass, run before any work starts.

A bad option must fail in the first second with one line that names it, not
after the media is read or a fit has run, and never by falling back to a
default: ``--steps 0`` is an error, not "use the default". These helpers are
used by the Python API (so scripts get the same checks) and stay free of
torch except :func:`check_device`, which needs it to see the hardware.
"""

from __future__ import annotations

import math
import re

from .errors import NeofieldError

MAX_SIDE = 16384  # pixels: H.264 level 6.2 tops out at 8,192; 16 K leaves room for fields rendered large
MAX_FPS = 1000.0
MIN_FPS = 0.01  # one frame per 100 s; below it container time bases run out (a frame's duration overflows)
MAX_SAMPLE_RATE = 768_000  # the highest rate audio interfaces and FFmpeg's encoders use
MAX_BATCH = 1 << 22
PRECISIONS = ("auto", "float32", "bfloat16")  # matmul precision of a fit (neofield.runtime)
COMPILE_MODES = ("auto", "on", "off")  # torch.compile of a fit or a decode
BETWEEN = ("blend", "field")  # what a frame between fitted frames shows (neofield.render.plan_decode)


def positive_int(name: str, value: int | None, maximum: int | None = None) -> int | None:
    """``value`` unchanged if it is None or a whole number in ``[1, maximum]``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NeofieldError(f"{name} must be a whole number >= 1, not {value!r}")
    if maximum is not None and value > maximum:
        raise NeofieldError(f"{name} {value:,} is too large (at most {maximum:,})")
    return value


def non_negative_int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NeofieldError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def positive_float(name: str, value: float | None, maximum: float | None = None) -> float | None:
    """``value`` as a float if it is None or finite, > 0 and at most ``maximum``."""
    if value is None:
        return None
    v = _number(name, value)
    if not v > 0:
        raise NeofieldError(f"{name} must be > 0, not {value!r}")
    if maximum is not None and v > maximum:
        raise NeofieldError(f"{name} {value:g} is too large (at most {maximum:g})")
    return v


def non_negative_float(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    v = _number(name, value)
    if v < 0:
        raise NeofieldError(f"{name} must be >= 0, not {value!r}")
    return v


def fraction(name: str, value: float | None) -> float | None:
    """A share in [0, 1]."""
    if value is None:
        return None
    v = _number(name, value)
    if not 0.0 <= v <= 1.0:
        raise NeofieldError(f"{name} must be between 0 and 1, not {value!r}")
    return v


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NeofieldError(f"{name} must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise NeofieldError(f"{name} must be a finite number, not {value!r}")
    return v


def parse_size(text: str, name: str = "size") -> tuple[int, int]:
    """``WxH`` (e.g. ``320x180``) as ``(width, height)``, each in ``[1, MAX_SIDE]``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise NeofieldError(f"{name} {text!r} is not of the form WIDTHxHEIGHT, e.g. 320x180")
    return check_size(name, (int(m[1]), int(m[2])))


def parse_crop(text: str, name: str = "--crop") -> tuple[int, int, int, int]:
    """``X,Y,W,H`` (e.g. ``100,40,320,180``): a window of a frame, in its pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", text or "")
    if not m:
        raise NeofieldError(f"{name} {text!r} is not of the form X,Y,W,H (whole pixels), e.g. 100,40,320,180")
    return int(m[1]), int(m[2]), int(m[3]), int(m[4])


def check_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    """A ``(width, height)`` with each side in ``[1, MAX_SIDE]``."""
    w, h = size
    if w <= 0 or h <= 0:
        raise NeofieldError(f"{name} '{w}x{h}' must be positive")
    if max(w, h) > MAX_SIDE:
        raise NeofieldError(f"{name} '{w}x{h}' is too large (at most {MAX_SIDE} pixels a side)")
    return w, h


def parse_sigma(text: str | None) -> float | tuple[float, ...] | None:
    """``--rff-sigma``: one value, or a comma-separated value per input."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise NeofieldError(f"--rff-sigma {text!r} is not a number or a comma-separated list") from None
    for v in values:
        positive_float("--rff-sigma values", v, maximum=1e6)
    return values[0] if len(values) == 1 else values


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(device: str) -> str:
    """Fail fast on a device this machine does not have (before the media is read).

    ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` and
    ``mps`` are understood; the device must exist here.
    """
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise NeofieldError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {device!r}")
    if device in ("auto", "cpu"):  # there on every machine: no need to import torch to know it
        return device
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise NeofieldError(f"--device {device} was asked for, but no CUDA device is available")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise NeofieldError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise NeofieldError("--device mps was asked for, but this torch has no usable Apple GPU (MPS)")
    return device


def bit_depths(bits: float | None, latent_bits: float | None):
    """``--bits`` / ``--latent-bits`` as :class:`~neofield.quantize.BitDepths` (None: the default)."""
    from .quantize import MAX_BITS, MIN_BITS, BitDepths

    for name, value in (("--bits", bits), ("--latent-bits", latent_bits)):
        if value is not None and not (math.isfinite(value) and MIN_BITS <= value <= MAX_BITS):
            raise NeofieldError(f"{name} must be a bit depth from {MIN_BITS} to {MAX_BITS}, not {value:g}")
    if bits is None and latent_bits is None:
        return None
    default = BitDepths()
    backbone = default.backbone if bits is None else bits
    return BitDepths(backbone, backbone if latent_bits is None else latent_bits)


UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2}


def parse_bytes(text: str, name: str = "--size") -> int:
    """``20KB``, ``1.5MB``, ``300KiB`` or a plain byte count (KB = 1000 bytes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text or "")
    unit = m[2].lower() if m else None
    if not m or unit not in UNITS:
        raise NeofieldError(f"{name} {text!r} is not a size such as 20KB, 1.5MB or 40000")
    value = float(m[1]) * UNITS[unit]
    if not 1 <= value <= 1e12:
        raise NeofieldError(f"{name} {text!r} is out of range")
    return round(value)


def parse_bitrate(text: str, duration: float) -> int:
    """``300k`` or ``1.2M`` bits per second over ``duration`` seconds, as bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)(?:bps|b/s)?\s*", text or "")
    if not m:
        raise NeofieldError(f"--bitrate {text!r} is not a rate such as 300k or 1.2M (bits per second)")
    bps = float(m[1]) * {"": 1, "k": 1e3, "m": 1e6}[m[2].lower()]
    if bps <= 0:
        raise NeofieldError(f"--bitrate {text!r} must be positive")
    return max(1, round(bps * duration / 8))
