"""Checkpoints of a fit: what it needs to go on exactly where it stopped.

A checkpoint is a file beside the bundle (``clip.nf.ckpt``), written
atomically while a long fit runs and whenever one is interrupted, and removed
once the bundle is written. It holds a :class:`FitState` (the step and the
plan, the running loss, the field's and Adam's tensors, the sampler's random
state and error map, the quantization-aware finetuning once it began, the learning-rate
scale that divergence rollbacks left) and a fingerprint of what the fit is for
(the encode's options and the source's samples), so that ``--resume`` with
other options or other media is refused instead of continued.

Checkpoints are files someone may hand over, so they are read with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts,
never arbitrary pickled objects (see docs/format.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path

import torch

from .errors import NeofieldError
from .files import atomic_output

FORMAT = "neofield-checkpoint"
VERSION = 1
SUFFIX = ".ckpt"
DEFAULT_EVERY = 60.0  # seconds between checkpoints, by default ...
DEFAULT_MIN_FIT = 120.0  # ... of fits planned to take at least this long (shorter ones lose little when stopped)


@dataclass
class FitState:
    """Everything :func:`neofield.fit.fit` needs to continue a fit, taken between two steps."""

    step: int  # steps taken
    total: int | None  # the planned steps (None while a time budget is still being probed)
    final: bool  # whether ``total`` is the plan (a time budget turns into steps after its probe)
    announced: bool  # the plan has been reported
    ema: float | None  # the running loss
    elapsed: float  # seconds of fitting so far (a time budget has what is left of it)
    field: dict  # the field's state_dict
    optimizer: dict  # Adam's state_dict
    sampler: torch.Tensor  # the point sampler's torch.Generator state
    levels: dict[str, int] | None = None  # quantization-aware finetuning's levels, once it started
    q_start: int = 0  # ... and the step it started at
    lr_scale: float = 1.0  # halved by every divergence rollback, on top of the schedule
    rollbacks: int = 0
    replans: list[float] = dataclass_field(default_factory=list)  # shares of a time budget still to replan at
    compiled: bool = False  # the training step was being compiled (torch.compile)
    periodic: bool = False  # periodic checkpoints were on
    lam: float | None = None  # the rate term's lambda, as a size or PSNR target has steered it so far
    scales: torch.Tensor | None = None  # ... and its latents' pricing (a scale per block, or a scale and a centre
    # per latent), as refreshed
    errors: torch.Tensor | None = None  # the error map that draws a picture's points (neofield.sampling)


@dataclass
class Checkpoint:
    state: FitState
    fingerprint: dict  # what the fit is for: the caller's options and source (compared on resume)
    extra: dict  # what the caller needs besides the fit (the encoder: model width, rate control's choice)
    neofield_version: str = ""


def path_for(output: str | Path) -> Path:
    """The checkpoint of the bundle ``output``: ``clip.nf`` -> ``clip.nf.ckpt``."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def parse_interval(value: float | str | None) -> float | str | None:
    """``--checkpoint-every``: seconds (``60``, ``60s``, ``5m``, ``1h``), ``off`` (None) or ``auto``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("off", "none", "no"):
            return None
        if text == "auto":
            return "auto"
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?", text)
        if not m:
            raise NeofieldError(f"--checkpoint-every {value!r} is not an interval such as 60, 60s, 5m or off")
        seconds = float(m[1]) * {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m[2]]
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NeofieldError(f"--checkpoint-every must be a number of seconds or off, not {value!r}")
    else:
        seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise NeofieldError(f"--checkpoint-every must be > 0 seconds (or off), not {value!r}")
    return seconds


def resolve_interval(value: float | str | None) -> tuple[float | None, float]:
    """(seconds between checkpoints or None, the planned fit length below which they stay off)."""
    value = parse_interval(value)
    if value == "auto":
        return DEFAULT_EVERY, DEFAULT_MIN_FIT
    return value, 0.0


def to_payload(state: FitState) -> dict:
    return {f.name: getattr(state, f.name) for f in fields(FitState)}


def from_payload(payload: dict) -> FitState:
    missing = [f.name for f in fields(FitState)
               if f.name not in payload and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    state = FitState(**{f.name: payload[f.name] for f in fields(FitState) if f.name in payload})
    checks = {
        "step": isinstance(state.step, int) and state.step >= 0,
        "total": state.total is None or isinstance(state.total, int),
        "elapsed": isinstance(state.elapsed, (int, float)) and isinstance(state.lr_scale, (int, float)),
        "field": isinstance(state.field, dict) and all(isinstance(v, torch.Tensor) for v in state.field.values()),
        "optimizer": isinstance(state.optimizer, dict),
        "sampler": isinstance(state.sampler, torch.Tensor) and state.sampler.dtype == torch.uint8,
        "levels": state.levels is None or (isinstance(state.levels, dict) and all(
            isinstance(k, str) and isinstance(v, int) for k, v in state.levels.items())),
        "lam": state.lam is None or (isinstance(state.lam, (int, float)) and state.lam >= 0),
        "scales": state.scales is None or (isinstance(state.scales, torch.Tensor) and state.scales.ndim in (1, 3)
                                           and state.scales.is_floating_point()),
        "errors": state.errors is None or (isinstance(state.errors, torch.Tensor) and state.errors.ndim == 1
                                           and state.errors.is_floating_point()),
    }
    wrong = [name for name, ok in checks.items() if not ok]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} of the wrong type")
    return state


def save(path: str | Path, state: FitState, fingerprint: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (a temporary file renamed over the old one): an
    interrupted write leaves the previous checkpoint, never half of a new one."""
    from . import __version__

    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, "neofield_version": __version__,
               "fingerprint": fingerprint, "extra": extra or {}, "state": to_payload(state)}
    try:
        with atomic_output(path, force=True) as tmp:
            torch.save(payload, tmp)
    except OSError as e:
        raise NeofieldError(f"could not write the checkpoint {path}: {e.strerror or e}") from None
    return path


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint; anything but a well-formed one is a one-line :class:`NeofieldError`."""
    path = Path(path)
    if not path.is_file():
        raise NeofieldError(f"there is no checkpoint {path} to resume from")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage, a pickle of forbidden objects
        raise NeofieldError(f"{path} is not a readable neofield checkpoint ({_short(e)}): "
                            "delete it to start the encode over") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NeofieldError(f"{path} is not a neofield checkpoint")
    if payload.get("version") != VERSION:
        raise NeofieldError(f"{path} is a version {payload.get('version')!r} checkpoint; this neofield reads "
                            f"version {VERSION}: delete it to start the encode over")
    try:
        state = from_payload(payload["state"])
        fingerprint, extra = payload["fingerprint"], payload["extra"]
        if not isinstance(fingerprint, dict) or not isinstance(extra, dict):
            raise ValueError("fingerprint of the wrong type")
    except (KeyError, TypeError, ValueError) as e:
        raise NeofieldError(f"{path} is a damaged neofield checkpoint ({_short(e)}): "
                            "delete it to start the encode over") from None
    return Checkpoint(state, fingerprint, extra, str(payload.get("neofield_version", "")))


def check_fingerprint(checkpoint: Checkpoint, fingerprint: dict, path: str | Path) -> None:
    """Refuse a checkpoint made for other options or other media, naming what differs."""
    stored = checkpoint.fingerprint
    differ = [k for k in sorted(set(stored) | set(fingerprint), key=lambda k: (k != "source", str(k)))
              if stored.get(k) != fingerprint.get(k)]
    if not differ:
        return
    parts = []
    for key in differ[:4]:
        if key == "source":
            parts.append("the source (other media, or another piece of it)")
        else:
            parts.append(f"{key} {_show(stored.get(key))} there, {_show(fingerprint.get(key))} here")
    more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
    raise NeofieldError(f"{path} is from another encode: {'; '.join(parts)}{more}. Give the same options to "
                        "resume it, or delete it to start over")


def _show(value) -> str:
    return "unset" if value is None else str(value)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
