"""The codec: media -> signal -> field -> bundle, and back, as plain functions.

This is the Python API the CLI wraps::

    import neofield
    report = neofield.encode("clip.mp4", "clip.nf", time_budget=120)
    neofield.decode("clip.nf", "clip_2x.mp4", scale=2)
    print(neofield.psnr("clip.mp4", "clip.nf"))
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__, collection, distributed, rate
from . import bundle as bundle_io
from . import checkpoint as ckpt
from . import options as opt
from .bundle import Bundle
from .errors import NeofieldError
from .fields.layouts import INTERPOLATIONS, TimeSegments, default_segments
from .fields.neomlp import PRESETS, NeoMLPField, build_config
from .fields.registry import ARCHS, AUTO_PRECISION, RATES, baseline_for
from .files import atomic_output, check_output
from .fit import DEFAULT_BATCH, FitConfig, FitInterrupted, FitProgress, FitResult, QuantizationAware, fit
from .media import (
    Media,
    Selection,
    keeps_sample_aspect_ratio,
    read_media,
    read_tags,
    write_audio,
    write_image,
    write_image_sequence,
    write_video,
)
from .outputs import OutputTarget, resolve_target
from .quality import compare, size_report
from .quantize import BitDepths, levels_for
from .render import (
    DecodeCost,
    DecodePlan,
    Evaluator,
    VideoGrid,
    decode_cost,
    plan_decode,
    probe_speed,
    render_media,
    render_video,
    should_compile,
)
from .runtime import COMPILE_MODES, PRECISIONS, compiler_available
from .schema import DEFAULT_LIMITS, Limits
from .signal import CoordinateMap, Signal, ValueMap, audio_rff_sigma

# Without --steps/--epochs/--time-budget an encode stops at whichever of these
# comes first: 20 epochs is where the shipped 1 s clip reaches ~35 dB (about
# 2 minutes on 2 cores); 5 minutes bounds a long or large clip, which then
# gets fewer epochs and the plan says so (docs/cpu-defaults.md).
DEFAULT_EPOCHS = 20.0
DEFAULT_TIME_BUDGET = 300.0
LONG_FIT_SECONDS = 600.0  # plans longer than this are announced with a warning
MAX_SEGMENTS = 1_000_000
MEASURE_SECONDS = 60.0  # the encoder's own quality check on a large clip is bounded (see measure)
MEASURE_MIN_FRAMES = 8  # ... but never to fewer frames than this
ATTENTIONS = ("linear", "softmax")
DEFAULT_INTERPOLATION = "linear"  # latent sets blended between their centres (docs/cpu-defaults.md)


# ---------------------------------------------------------------- encode ----
@dataclass
class EncodeReport:
    path: Path
    bytes: int
    kind: str
    parameters: dict
    fit: FitResult
    budget: dict
    quality: dict = field(default_factory=dict)
    target: dict | None = None  # what rate control was asked and reached

    def to_dict(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, "kind": self.kind, "parameters": self.parameters,
                "budget": self.budget, "fit": self.fit.to_dict(), "quality": self.quality, "target": self.target}


class EncodeInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped an encode's fit: what was kept, in one line (``str``)."""

    def __init__(self, step: int, total: int | None, checkpoint: Path | None, bundle: Path | None):
        self.step, self.total, self.checkpoint, self.bundle = step, total, checkpoint, bundle
        parts = [f"at step {step:,}" + (f" of {total:,}" if total else "")]
        if bundle is not None:
            parts.append(f"best-so-far bundle written to {bundle}")
        if checkpoint is not None:
            parts.append(f"checkpoint written to {checkpoint}; resume with --resume"
                         + (" --force (to replace that bundle)" if bundle is not None else ""))
        elif bundle is None:
            parts.append("nothing was written")
        self.details = "; ".join(parts)
        super().__init__(f"interrupted {self.details}")


def default_preset(kind: str) -> str:
    """The CPU default, measured at equal time (docs/cpu-defaults.md): ``tiny`` for every kind.
    On sound too, its twice-as-fast steps beat ``small``'s width (Bach, 45 s: 36.6 vs 36.1 dB)."""
    return "tiny"


def default_budget(steps: int | None, epochs: float | None, time_budget: float | None) -> dict:
    """The stopping rules of a fit: the user's, or the default when none is given."""
    if steps is None and epochs is None and time_budget is None:
        return {"steps": None, "epochs": DEFAULT_EPOCHS, "time_budget": DEFAULT_TIME_BUDGET, "default": True}
    return {"steps": steps, "epochs": epochs, "time_budget": time_budget, "default": False}


def make_field(signal: Signal, preset: str, segments: int, seed: int = 0,
               interpolation: str = DEFAULT_INTERPOLATION, **overrides) -> NeoMLPField:
    """A fresh NeoMLP sized for ``signal``, with ``segments`` latent sets along time,
    blended between their centres (``linear``) or held over each slice (``nearest``)."""
    if preset not in PRESETS:
        raise NeofieldError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    opt.positive_int("--segments", segments, MAX_SEGMENTS)
    if overrides.get("rff_sigma") is None and signal.media.audio is not None:
        overrides["rff_sigma"] = rff_sigma_for(signal, preset)
    config = build_config(preset, signal.coordinate_map.in_features, signal.out_features, kind=signal.kind,
                          seed=seed, **overrides)
    torch.manual_seed(seed)
    return NeoMLPField(config, TimeSegments.over(signal, segments, interpolation))


def sound_sigma(signal: Signal) -> float | None:
    """The RFF sigma of the signal's sound's time axis, from its spectral centroid
    (:func:`neofield.signal.audio_rff_sigma`); None without sound."""
    if signal.media.audio is None:
        return None
    return audio_rff_sigma(signal.media.audio, signal.sample_rate)


def rff_sigma_for(signal: Signal, preset: str) -> float | tuple[float, ...]:
    """The preset's sigma for pictures; for the sound's time axis, the sound's spectral
    centroid (:func:`sound_sigma`), measured in docs/cpu-defaults.md."""
    audio = sound_sigma(signal)
    if signal.kind == "audio":
        return audio
    video = PRESETS[preset].video_sigma
    return (video, video, audio)


def check_round_trip(signal: Signal) -> None:
    """The decoder's grid at scale 1 must be the signal's own, stream by stream.

    Checked before the fit, so that a clip the bundle could not represent fails
    in the first second rather than after minutes of fitting.
    """
    plan = plan_decode(signal.layout())
    if signal.video is not None and not signal.media.still:
        f, h, w, _ = signal.video.shape
        if plan.video is None or (plan.video.frames, plan.video.height, plan.video.width) != (f, h, w):
            raise NeofieldError(f"cannot represent this clip's video grid ({w}x{h}, {f} frames at "
                                f"{signal.fps:g} fps): please report it")
    if signal.audio is not None and (plan.audio is None or plan.audio.samples != signal.n_audio_points):
        raise NeofieldError(f"cannot represent this clip's sound ({signal.n_audio_points} samples at "
                            f"{signal.sample_rate} Hz): please report it")


def encode(
    source: str | Path,
    output: str | Path | None = None,
    *,
    selection: Selection = Selection(),
    preset: str | None = None,
    segments: int | None = None,
    lr: float | None = None,
    warmup_steps: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    steps: int | None = None,
    epochs: float | None = None,
    time_budget: float | None = None,
    attention: str | None = None,
    latents: str = DEFAULT_INTERPOLATION,
    precision: str = "auto",
    arch: str = "neomlp",
    compile_mode: str = "auto",
    rff_sigma: float | tuple[float, ...] | None = None,
    audio_share: float | None = None,
    weights_dtype: str = "quantized",
    bits: BitDepths | None = None,
    size: int | str | None = None,
    bitrate: float | str | None = None,
    target_psnr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    force: bool = False,
    evaluate: bool = True,
    callback: Callable[[FitProgress], None] | None = None,
    on_signal: Callable[[Signal, NeoMLPField, dict], None] | None = None,
    checkpoint_every: float | str | None = "auto",
    resume: bool = False,
    save_on_interrupt: bool = False,
) -> EncodeReport:
    """Fit a NeoMLP to a media file and write it as a ``.nf`` bundle.

    Every option is checked before the media is read. With no stopping rule
    given, the fit stops after ``DEFAULT_EPOCHS`` epochs or
    ``DEFAULT_TIME_BUDGET`` seconds, whichever comes first. ``on_signal`` is
    called once the media is read and the field built, with the budget (the CLI
    prints the plan there).

    ``size`` (bytes, or text such as ``"20KB"``), ``bitrate`` (bits per second,
    or ``"300k"``) or ``target_psnr`` (dB) hand the model width and the bit
    depths to rate control (:mod:`neofield.rate`); the report's ``target`` says
    what was reached, and by how much and why a target was missed.

    A fit writes a checkpoint (``OUTPUT.ckpt``, :mod:`neofield.checkpoint`)
    every ``checkpoint_every`` seconds (``"auto"``: every 60 s once the plan
    says the fit takes over 2 minutes; ``None`` or ``"off"``: never), and
    whenever Ctrl-C or SIGTERM stops it, which then raises
    :class:`EncodeInterrupted` (after writing the bundle of the field as it is,
    with ``save_on_interrupt``). ``resume=True`` continues from that checkpoint,
    given the same options and source; the checkpoint is removed once the bundle
    is written.

    In a process group (``torchrun``, :mod:`neofield.distributed`) the fit is
    data-parallel; rank 0 checkpoints, measures and writes, and the other ranks
    return a report of the fit alone (``bytes`` 0, no quality).
    """
    if preset is not None and preset not in PRESETS:
        raise NeofieldError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    opt.positive_int("--segments", segments, MAX_SEGMENTS)
    opt.positive_float("--lr", lr, maximum=10.0)
    opt.non_negative_int("--warmup", warmup_steps)
    opt.positive_int("--batch-size", batch_size, opt.MAX_BATCH)
    opt.positive_int("--steps", steps)
    opt.positive_float("--epochs", epochs)
    opt.positive_float("--time-budget", time_budget)
    opt.fraction("--audio-share", audio_share)
    opt.non_negative_int("--seed", seed)
    if attention is not None and attention not in ATTENTIONS:
        raise NeofieldError(f"--attention must be {' or '.join(ATTENTIONS)}, not {attention!r}")
    if latents not in INTERPOLATIONS:
        raise NeofieldError(f"--latents must be {' or '.join(INTERPOLATIONS)}, not {latents!r}")
    if precision not in PRECISIONS:
        raise NeofieldError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if arch not in ARCHS:
        raise NeofieldError(f"--arch must be one of {', '.join(ARCHS)}, not {arch!r}")
    if precision == "auto":
        precision = AUTO_PRECISION.get(arch, precision)
    if compile_mode not in COMPILE_MODES:
        raise NeofieldError(f"--compile must be one of {', '.join(COMPILE_MODES)}, not {compile_mode!r}")
    stored_bits = bundle_io.storage_bits(weights_dtype, bits)  # ``bits`` stays what was asked, for the checks below
    targets = [name for name, v in (("--size", size), ("--bitrate", bitrate), ("--psnr", target_psnr)) if v is not None]
    if len(targets) > 1:
        raise NeofieldError(f"give one target, not {' and '.join(targets)}")
    if targets and arch != "neomlp":
        raise NeofieldError(f"{targets[0]} sizes a NeoMLP; with --arch {arch}, give --bits instead")
    if targets and weights_dtype != bundle_io.QUANTIZED:
        raise NeofieldError(f"{targets[0]} needs --dtype {bundle_io.QUANTIZED}: rate control sets the bit depths")
    if targets and bits is not None:
        raise NeofieldError(f"{targets[0]} chooses the bit depths itself: leave out --bits")
    size_bytes = rate.parse_bytes(size) if isinstance(size, str) else size
    opt.positive_int("--size", size_bytes)
    if isinstance(bitrate, str):
        rate.parse_bitrate(bitrate, 1.0)  # checked now, converted once the duration is known
    else:
        opt.positive_float("--bitrate", bitrate)
    opt.positive_float("--psnr", target_psnr, maximum=200.0)
    for v in (rff_sigma if isinstance(rff_sigma, tuple) else (rff_sigma,)):
        opt.positive_float("--rff-sigma", v)
    opt.check_device(device)
    selection.check()
    every, min_fit = ckpt.resolve_interval(checkpoint_every)
    source = Path(source)
    output = Path(output) if output is not None else source.with_suffix(".nf")
    ckpt_path = ckpt.path_for(output)
    saved = ckpt.load(ckpt_path) if resume else None  # a missing or damaged checkpoint fails now
    if not resume and ckpt_path.exists() and not force:
        raise NeofieldError(f"{ckpt_path} holds an interrupted encode: add --resume to continue it, or --force "
                            "to start over")
    check_output(output, force)  # fail before minutes of fitting, not after

    media = read_media(source, selection)
    signal = Signal(media, audio_share=audio_share)
    preset = preset or default_preset(signal.kind)
    if isinstance(rff_sigma, tuple) and len(rff_sigma) != signal.coordinate_map.in_features:
        raise NeofieldError(f"--rff-sigma needs one value or {signal.coordinate_map.in_features} "
                            f"(one per input: {'x, y, t' if signal.coordinate_map.x else 't'})")
    check_round_trip(signal)
    if bitrate is not None:
        size_bytes = (rate.parse_bitrate(bitrate, signal.duration) if isinstance(bitrate, str)
                      else max(1, round(bitrate * signal.duration / 8)))
    target = rate.Target(size_bytes, target_psnr) if targets else None
    n_segments = segments or default_segments(signal)
    if rff_sigma is None and signal.media.audio is not None:  # once, not for every width rate control tries
        rff_sigma = rff_sigma_for(signal, preset)
    audio_sigma = sound_sigma(signal) if arch == "rffnet" else None

    def build(dim: int | None = None) -> NeoMLPField:
        width = {} if dim is None else {"dim": dim, "ffn_dim": 4 * dim}
        neomlp = make_field(signal, preset, n_segments, seed=seed, interpolation=latents, attention=attention,
                            rff_sigma=rff_sigma, **width)
        if arch == "neomlp":
            return neomlp
        return baseline_for(arch, signal.coordinate_map.in_features, signal.out_features,
                            neomlp.num_parameters()["total"], signal.kind, seed, audio_sigma)

    budget = default_budget(steps, epochs, time_budget)
    p = PRESETS[preset]
    if arch != "neomlp":  # a baseline's own rate and warm-up, unless given
        p = dataclasses.replace(p, lr=RATES[arch][0], warmup_steps=RATES[arch][1])
    quantized = weights_dtype == bundle_io.QUANTIZED
    bits = stored_bits
    meta = signal_metadata(signal, source, selection)
    meta.update(weights_dtype=weights_dtype, preset=preset)
    run = fit_fingerprint(source, meta, arch=arch, preset=preset, segments=n_segments, lr=lr or p.lr,
                          warmup=p.warmup_steps if warmup_steps is None else warmup_steps, batch_size=batch_size,
                          budget=budget, attention=attention, latents=latents, precision=precision,
                          rff_sigma=rff_sigma, audio_share=audio_share, weights_dtype=weights_dtype, bits=bits,
                          target=target, seed=seed)
    if saved is not None:
        ckpt.check_fingerprint(saved, run, ckpt_path)
        width = saved.extra.get("width")  # what rate control chose before the fit, not searched again
        if width is not None and width not in rate.WIDTHS:
            raise NeofieldError(f"{ckpt_path} is a damaged neofield checkpoint (model width {width!r})")
    else:
        width = rate.width_for_size(build, target.bytes, SIDE_BYTES) if target and target.bytes else None
    field_ = build(width)
    control = RateControl(target, signal, meta) if target else None
    if saved is not None and control is not None and saved.extra.get("rate_control"):
        control.restore(saved.extra["rate_control"])  # the depths the finetuning already trains for
    config = FitConfig(lr=lr or p.lr, warmup_steps=p.warmup_steps if warmup_steps is None else warmup_steps,
                       batch_size=batch_size, steps=budget["steps"], epochs=budget["epochs"],
                       time_budget=budget["time_budget"], seed=seed, device=device, precision=precision,
                       compile=compile_mode, checkpoint_every=every, checkpoint_min_seconds=min_fit,
                       quantization=bundle_io.quantization_aware(field_, control.choose if control else bits)
                       if quantized else None)

    def write_checkpoint(state: ckpt.FitState) -> None:
        extra = {"width": width}
        if control is not None and state.levels is not None:  # finetuning began: its depths were chosen
            extra["rate_control"] = control.to_dict()
        ckpt.save(ckpt_path, state, run, extra)

    if on_signal:
        on_signal(signal, field_, budget)
    try:
        result = fit(field_, signal, config, callback, on_checkpoint=write_checkpoint,
                     resume=saved.state if saved is not None else None)
    except FitInterrupted as stop:
        written = None
        if save_on_interrupt and distributed.is_main():  # the field as it is, through the usual rounding and container
            field_.cpu()
            if control:
                bits = control.finish(field_)
            symbols = bundle_io.round_weights(field_, weights_dtype, bits)
            meta.update(fit={**stop.result.to_dict(), "interrupted": True, "config": config.record()}, quality={})
            if quantized:
                meta["quantization"] = {"bits": bits.to_dict()}
            bundle_io.save(output, field_, meta, force=force, quantized=symbols)
            written = output
        state = stop.state
        raise EncodeInterrupted(state.step, state.total if state.final else None,
                                ckpt_path if stop.checkpointed else None, written) from None
    field_.cpu()
    if not distributed.is_main():  # a data-parallel fit's other processes: rank 0 has the same weights, and writes
        return EncodeReport(path=output, bytes=0, kind=signal.kind, parameters=field_.num_parameters(),
                            fit=result, budget=budget, quality={})
    if control:
        bits = control.finish(field_)
    symbols = bundle_io.round_weights(field_, weights_dtype, bits)
    quality = measure(field_, signal, result.points_per_second) if evaluate else {}
    meta.update(fit={**result.to_dict(), "config": config.record()}, quality=quality)
    if quantized:
        meta["quantization"] = {"bits": bits.to_dict()}
    nbytes = bundle_io.save(output, field_, meta, force=force, quantized=symbols)
    ckpt_path.unlink(missing_ok=True)  # the bundle is written: nothing left to resume
    report = EncodeReport(path=output, bytes=nbytes, kind=signal.kind, parameters=field_.num_parameters(),
                          fit=result, budget=budget, quality=quality)
    if control:
        report.target = control.outcome(nbytes, quality, width)
    return report


def fit_fingerprint(source: Path, meta: dict, *, budget: dict, bits: BitDepths | None, target: rate.Target | None,
                    rff_sigma, **options) -> dict:
    """What an encode's fit is for, as a checkpoint keeps it: the source (its decoded samples' hash, the
    file's size, the piece) and every option that changes the fit, by the names a user gives them, so that
    a resume with anything else is refused naming it. Device and --compile may differ."""
    fp = {"neofield": __version__,
          "source": {"bytes": source.stat().st_size, "sha256": meta["source"]["sha256"],
                     "selection": meta["source"]["selection"]},
          "--steps": budget["steps"], "--epochs": budget["epochs"], "--time-budget": budget["time_budget"],
          "--bits": bits.to_dict() if bits is not None else None,
          "--size/--bitrate/--psnr": target.describe() if target is not None else None,
          "--rff-sigma": list(rff_sigma) if isinstance(rff_sigma, tuple) else rff_sigma}
    fp.update({"--" + k.replace("_", "-"): v for k, v in options.items()})
    fp["--dtype"] = fp.pop("--weights-dtype")
    return json.loads(json.dumps(fp, default=float))  # plain numbers, lists and strings: what a checkpoint holds


PSNR_MARGIN = 0.1  # dB: what a PSNR target out of the fit's reach lets quantization cost
SIDE_BYTES = 1_400  # metadata, quantization parameters and headers of a quantized bundle (~1.4 KB measured)


class RateControl:
    """Chooses the bit depths for a target when finetuning starts, and again after
    the fit if the finetuning moved the size out of tolerance."""

    def __init__(self, target: rate.Target, signal: Signal, meta: dict):
        self.target, self.meta = target, meta
        self.probe = rate.PsnrProbe(signal) if target.psnr is not None else None
        self.bits: BitDepths | None = None
        self.float_psnr: float | None = None  # the field's probe PSNR before quantization
        self.notes: list[str] = []

    def choose(self, field_: NeoMLPField) -> BitDepths:
        if self.target.bytes is not None:
            depth = rate.bits_for_size(field_, self.target.bytes - self.side_bytes(field_))
        else:
            self.float_psnr = self.probe(field_)
            goal = self.target.psnr
            if self.float_psnr < goal + PSNR_MARGIN:  # out of reach: no depth gets there, so spend no more bits
                goal = self.float_psnr - PSNR_MARGIN  # than it takes to keep what the fit reached
                self.notes.append(f"the fit reached {self.float_psnr:.2f} dB before quantization, short of the "
                                  f"target: quantized to keep that within {PSNR_MARGIN:g} dB")
            depth = rate.bits_for_psnr(field_, self.probe, goal)
        self.bits = BitDepths(depth, depth)
        return self.bits

    def to_dict(self) -> dict:
        """The choice made when finetuning started, for a checkpoint."""
        return {"bits": self.bits.to_dict() if self.bits is not None else None, "float_psnr": self.float_psnr,
                "notes": list(self.notes)}

    def restore(self, saved: dict) -> None:
        try:
            self.bits = BitDepths(**saved["bits"]) if saved.get("bits") else None
            self.float_psnr, self.notes = saved.get("float_psnr"), [str(n) for n in saved.get("notes", [])]
        except (TypeError, ValueError, KeyError) as e:
            raise NeofieldError(f"the checkpoint's rate control is damaged ({e})") from None

    def side_bytes(self, field_: NeoMLPField) -> int:
        """Everything but the coded streams, from a trial bundle (plus room for the fit and quality record)."""
        meta = {**self.meta, "quantization": {"bits": BitDepths().to_dict()}}
        draft = bundle_io.pack(field_, meta, bundle_io.quantize_state(field_, BitDepths()))
        return bundle_io.stored_bytes(draft)["side"] + 400

    def finish(self, field_: NeoMLPField) -> BitDepths:
        """The depths to store: the finetuned ones, unless the size drifted past tolerance."""
        if self.bits is None:  # the fit stopped before finetuning began
            self.notes.append("the fit stopped before quantization-aware finetuning began")
            return self.choose(field_)
        if self.target.bytes is not None:
            side = self.side_bytes(field_)
            size = rate.coded_bytes(field_, self.bits.backbone) + side
            if abs(size / self.target.bytes - 1) > rate.SIZE_TOLERANCE / 2:
                self.notes.append(f"finetuning moved the size to {size:,} bytes; depth searched again")
                return self.choose(field_)
        return self.bits

    def outcome(self, nbytes: int, quality: dict, width: int | None) -> dict:
        out = {"asked": self.target.describe(), "bytes": nbytes, "bits": self.bits.to_dict(), "width": width,
               "notes": list(self.notes)}
        if self.target.bytes is not None:
            off = nbytes / self.target.bytes - 1
            out["size_error"] = round(off, 4)
            if abs(off) > rate.SIZE_TOLERANCE:
                low, high = rate.SEARCH_BITS
                out["notes"].append(f"missed the size by {off:+.0%}: the depth search stops at {low:g}-{high:g} "
                                    "bits; a different --segments or --preset moves the size further")
        else:
            key = "audio_psnr_db" if "video_psnr_db" not in quality else "video_psnr_db"
            reached = quality.get(key)
            out["psnr"] = reached
            if reached is not None and reached < self.target.psnr:
                why = (f"the fit itself reached {self.float_psnr:.2f} dB before quantization in this budget: give "
                       "it more --time-budget or a larger --preset" if self.float_psnr is not None
                       and self.float_psnr < self.target.psnr + PSNR_MARGIN else
                       f"quantizing to {self.bits.backbone:g} bits cost more than the search expected")
                out["notes"].append(f"missed the PSNR target by {self.target.psnr - reached:.2f} dB: {why}")
        return out


def signal_metadata(signal: Signal, source: Path, selection: Selection) -> dict:
    """Everything a decoder needs besides the weights (see docs/format.md)."""
    return {"neofield_version": __version__, **signal.layout(),
            "source": {"name": source.name, "selection": selection.to_dict(), "sha256": fingerprint(signal.media)}}


def fingerprint(media: Media) -> str:
    """SHA-256 of the decoded samples: lets ``psnr`` check it was given the right original."""
    h = hashlib.sha256()
    for arr in (media.video, media.audio):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def measure(field_: NeoMLPField, signal: Signal, points_per_second: float | None = None) -> dict:
    """Quality of the field against the signal on the training grid (what the bundle stores).

    Rendering a whole large clip takes longer than many fits (121 M points of
    Big Buck Bunny at 1280x720: ~20 minutes on 2 cores), so when the fit's
    speed says it would take over ``MEASURE_SECONDS`` the pictures are measured
    on evenly spaced frames, and the report says how many
    (``video_frames_measured``); the sound is always measured whole, and
    ``neofield psnr`` always measures everything.
    """
    layout = signal.layout()
    media = signal.media
    if media.video is None or media.still or not points_per_second:
        return compare(media, render_media(field_, layout))
    frames, h, w, _ = media.video.shape
    count = max(int(MEASURE_SECONDS * points_per_second / (h * w)), MEASURE_MIN_FRAMES)
    if count >= frames:
        return compare(media, render_media(field_, layout))
    picks = np.unique(np.linspace(0, frames - 1, count).round().astype(int))
    cmap, vmap = CoordinateMap.from_dict(layout["coordinates"]), ValueMap(**layout["values"]["video"])
    rendered = [next(render_video(field_, cmap, VideoGrid(w, h, 1, media.fps, k / media.fps), vmap,
                                  slice(*layout["outputs"]["video"]))) for k in picks]
    original = Media(video=media.video[picks], fps=media.fps, audio=media.audio, sample_rate=media.sample_rate)
    candidate = Media(video=np.stack(rendered), fps=media.fps)
    if media.audio is not None:
        candidate.audio = render_media(field_, layout, DecodePlan(None, plan_decode(layout).audio)).audio
        candidate.sample_rate = media.sample_rate
    return {**compare(original, candidate), "video_frames_measured": len(picks)}


# ---------------------------------------------------------------- decode ----
def load(path: str | Path, limits: Limits = DEFAULT_LIMITS, item: str | int | None = None) -> Bundle:
    """Read a ``.nf`` bundle (raises :class:`NeofieldError` if it is not a valid one within ``limits``).

    A set bundle (``neofield set fit``) holds many signals over one backbone: ``item`` (an index or a
    name) picks one, returned as an ordinary single-signal bundle.
    """
    return collection.select(bundle_io.load(path, limits), item, str(path))


TAG_KEY = "comment"  # a container tag every muxer we write keeps (mp4, mov, mkv, webm, flac, ogg, wav)


@dataclass
class DecodeReport:
    path: Path | None  # None when written to standard output
    kind: str  # video, audio, still or sequence
    plan: DecodePlan
    bytes: int
    files: int = 1
    notes: list[str] = field(default_factory=list)
    cost: DecodeCost | None = None  # what was estimated before rendering
    seconds: float = 0.0  # what rendering and writing took

    def to_dict(self) -> dict:
        return {"path": str(self.path) if self.path else "-", "kind": self.kind, "grid": self.plan.to_dict(),
                "points": self.plan.points, "bytes": self.bytes, "files": self.files, "notes": self.notes,
                "cost": self.cost.to_dict() if self.cost else None, "seconds": round(self.seconds, 2)}


def check_decode_options(scale: float, scale_time: float | None, scale_rate: float | None,
                         size: tuple[int, int] | None, fps: float | None, sample_rate: int | None,
                         start: float | None, end: float | None, frame: float | None, crf: float | None) -> None:
    opt.positive_float("--scale", scale, maximum=64.0)
    opt.positive_float("--scale-time", scale_time, maximum=64.0)
    opt.positive_float("--scale-rate", scale_rate, maximum=64.0)
    if size is not None:
        opt.check_size("--size", size)
    opt.positive_float("--fps", fps, maximum=opt.MAX_FPS)
    opt.positive_int("--sample-rate", sample_rate, opt.MAX_SAMPLE_RATE)
    opt.non_negative_float("--start", start)
    opt.non_negative_float("--end", end)
    opt.non_negative_float("--frame", frame)
    opt.non_negative_float("--crf", crf)


def check_cost(cost: DecodeCost, limits: Limits) -> None:
    """A decode that would take more than the limits allow is refused before it starts, in one line."""
    hint = "; --allow-large raises the limits"
    if cost.points > limits.decode_points:
        raise NeofieldError(f"this decode would evaluate the field at {cost.points:,} points, more than the "
                            f"{limits.decode_points:,} allowed (about {_hours(cost.seconds)} here){hint}")
    if cost.memory_bytes > limits.decode_bytes:
        raise NeofieldError(f"this decode would hold {cost.memory_bytes / 2**30:.1f} GiB at once (a frame and "
                            f"its copies, or the whole sound), more than the {limits.decode_bytes / 2**30:.1f} GiB "
                            f"allowed{hint}")
    if cost.seconds > limits.decode_seconds:
        raise NeofieldError(f"this decode would take about {_hours(cost.seconds)} on this machine "
                            f"({cost.points:,} points at {cost.points_per_second:,.0f} per second), more than the "
                            f"{_hours(limits.decode_seconds)} allowed{hint}")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 \
        else f"{seconds:.0f} s"


def check_plan(plan: DecodePlan) -> None:
    """Sizes a scale produced must still be ones a file can hold."""
    if plan.video is not None:
        v = plan.video
        if max(v.width, v.height) > opt.MAX_SIDE:
            raise NeofieldError(f"the decoded frames would be {v.width}x{v.height}: at most {opt.MAX_SIDE} "
                                "pixels a side")
        if v.fps > opt.MAX_FPS:
            raise NeofieldError(f"the decoded frame rate would be {v.fps:g} fps: at most {opt.MAX_FPS:g}")
        if v.fps < opt.MIN_FPS:
            raise NeofieldError(f"the decoded frame rate would be {v.fps:g} fps: at least {opt.MIN_FPS:g}")
    if plan.audio is not None and plan.audio.sample_rate > opt.MAX_SAMPLE_RATE:
        raise NeofieldError(f"the decoded sample rate would be {plan.audio.sample_rate} Hz: at most "
                            f"{opt.MAX_SAMPLE_RATE}")


def decode(
    bundle_path: str | Path,
    output: str | Path | None = None,
    *,
    scale: float = 1.0,
    scale_time: float | None = None,
    scale_rate: float | None = None,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    sample_rate: int | None = None,
    start: float | None = None,
    end: float | None = None,
    frame: float | None = None,
    codec: str | None = None,
    crf: float | None = None,
    lossless: bool = False,
    format: str | None = None,
    force: bool = False,
    compile_mode: str = "auto",
    limits: Limits = DEFAULT_LIMITS,
    item: str | int | None = None,
    on_plan: Callable[[DecodeCost], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DecodeReport:
    """Render a bundle's field on a grid and write it as real media.

    The output's name picks what is written (see :mod:`neofield.outputs`).
    Video defaults to what plays everywhere (H.264 4:2:0 + AAC in mp4/mov/mkv,
    VP9 + Opus in webm); ``lossless`` writes the exact RGB file used in
    measurement (H.264 RGB qp 0 + FLAC), so it shows the field's error alone.

    Before rendering, the cost (points, memory, time at a speed probed here)
    is checked against ``limits`` and passed to ``on_plan``; ``on_progress``
    then gets (points done, points in all) as the field is evaluated. Long
    decodes compile the field (``compile_mode`` ``auto``, see
    :func:`neofield.render.should_compile`). ``item`` picks one signal of a set bundle (see :func:`load`).
    """
    check_decode_options(scale, scale_time, scale_rate, size, fps, sample_rate, start, end, frame, crf)
    if compile_mode not in COMPILE_MODES:
        raise NeofieldError(f"--compile must be one of {', '.join(COMPILE_MODES)}, not {compile_mode!r}")
    bundle_path = Path(bundle_path)
    b = load(bundle_path, limits, item)
    target = resolve_target(output, bundle_path, b.meta, scale, format, frame)
    if target.kind != "video" and (codec is not None or crf is not None or lossless):
        raise NeofieldError("--codec, --crf and --lossless apply to video files (.mp4 .mov .mkv .webm .gif)")
    if target.kind == "sequence" and not target.path.parent.is_dir():
        raise NeofieldError(f"output folder {target.path.parent} does not exist")
    if target.kind != "sequence" and not target.stdout:
        check_output(target.path, force)  # before any rendering
    plan = plan_decode(b.meta, scale, size, fps, sample_rate, start, end, scale_time, scale_rate, frame)
    notes = []
    if target.kind in ("still", "sequence"):
        plan = DecodePlan(plan.video, None)
    elif target.kind == "audio":
        plan = DecodePlan(None, plan.audio)
    elif target.suffix == ".gif" and plan.audio is not None:
        plan = DecodePlan(plan.video, None)
        notes.append("a gif holds no sound: the sound was left out")
    sar = tuple((b.meta["geometry"].get("video") or {}).get("sample_aspect_ratio") or (1, 1))
    if target.kind != "audio" and sar != (1, 1) and not keeps_sample_aspect_ratio(target.path, codec, lossless):
        notes.append(f"{target.suffix} cannot carry the source's pixel aspect ratio {sar[0]}:{sar[1]} "
                     "here: use .mp4 or .mov to keep it")
    if plan.video is None and target.kind != "audio":
        raise NeofieldError(f"no video lies after --start {start or 0:g} s (only sound does); decode it to .wav")
    check_plan(plan)
    if compile_mode == "on" and not compiler_available(torch.device("cpu")):
        raise NeofieldError("--compile on needs a C++ compiler (g++ or clang++); use --compile off or auto")
    channels = (b.meta["geometry"].get("audio") or {}).get("channels", 0)
    cost = decode_cost(plan, channels, probe_speed(b.field))
    check_cost(cost, limits)
    cost = dataclasses.replace(cost, compiled=should_compile(compile_mode, torch.device("cpu"), cost.seconds))
    if on_plan:
        on_plan(cost)
    done = 0

    def counted(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, cost.points)

    run = Evaluator(b.field, compiled=cost.compiled, on_points=counted)
    t0 = time.perf_counter()
    media = render_media(run, b.meta, plan, video_stream=True)
    tags = {TAG_KEY: json.dumps(decode_tag(bundle_path, b.meta, plan), sort_keys=True)}

    if target.kind == "sequence":
        paths = write_image_sequence(str(target.path), media.video, force=force, frames_total=plan.video.frames)
        return DecodeReport(target.path, target.kind, plan, sum(p.stat().st_size for p in paths), len(paths),
                            notes + run.notes, cost, time.perf_counter() - t0)
    with _destination(target, force) as tmp:
        if target.kind == "still":
            write_image(tmp, next(iter(media.video)))
        elif target.kind == "audio":
            write_audio(tmp, media.audio, media.sample_rate, metadata=tags)
        else:
            write_video(tmp, media.video, media.fps, media.audio,
                        media.sample_rate, codec=codec, crf=crf, lossless=lossless, sample_aspect_ratio=sar,
                        end_time=plan.video.seconds, frames_total=plan.video.frames,
                        metadata=tags)
        nbytes = tmp.stat().st_size
    return DecodeReport(None if target.stdout else target.path, target.kind, plan, nbytes, 1, notes + run.notes,
                        cost, time.perf_counter() - t0)


@contextlib.contextmanager
def _destination(target: OutputTarget, force: bool) -> Iterator[Path]:
    """A temporary file that becomes the output only once it is complete: renamed
    into place, or for ``-o -`` copied to standard output."""
    if not target.stdout:
        with atomic_output(target.path, force=force) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix="neofield-") as folder:
        tmp = Path(folder) / target.path.name
        yield tmp
        with open(tmp, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def decode_tag(bundle_path: Path, meta: dict, plan: DecodePlan) -> dict:
    """What a decoded file says about itself, so that ``psnr ORIGINAL FILE`` can cut
    the same piece of the original and tell the field's loss from the file's."""
    full = plan_decode(meta)
    on_original_grid = (plan.video == full.video or plan.video is None) and (plan.audio == full.audio
                                                                             or plan.audio is None)
    return {"neofield": __version__, "bundle": bundle_path.name, "source": meta["source"],
            "grid": plan.to_dict(), "original_grid": on_original_grid,
            "field_quality": meta.get("quality", {}) if on_original_grid and
            "video_frames_measured" not in meta.get("quality", {}) else {}}


def read_decode_tag(path: Path) -> dict | None:
    """The tag :func:`decode` wrote into ``path``, or None for other files."""
    try:
        tag = json.loads(read_tags(path).get(TAG_KEY, ""))
    except ValueError:
        return None
    return tag if isinstance(tag, dict) and "neofield" in tag and isinstance(tag.get("source"), dict) else None


# ------------------------------------------------------------------ psnr ----
def psnr(original: str | Path, candidate: str | Path, selection: Selection | None = None,
         per_frame: bool = False, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Quality of a bundle (or a decoded file) against the original media.

    For a bundle, the original is cut with the selection stored in the bundle
    and must be the very signal that was encoded (checked by fingerprint); the
    report adds the bundle size, bits per pixel or kbps, and the compression
    ratio against the raw signal (8-bit RGB, 16-bit PCM). A file written by
    ``decode`` carries the same selection in a tag, so it needs no options
    either, and a lossy one is reported beside the field's own quality.
    """
    if selection is not None:
        selection.check()
    candidate = Path(candidate)
    if candidate.suffix.lower() == ".nf":
        b = load(candidate, limits)
        stored = Selection.from_dict(b.meta["source"]["selection"])
        if selection is not None and selection != stored:
            raise NeofieldError(f"{candidate} was encoded from the piece ({_describe(stored)}) of its source; the "
                                f"options ask for ({_describe(selection)}): leave them out, a bundle knows its piece")
        media = read_media(original, stored)
        if fingerprint(media) != b.meta["source"]["sha256"]:
            raise NeofieldError(f"{original} is not the media {candidate} was encoded from "
                                f"(it was {b.meta['source']['name']!r}, {_describe(stored)})")
        # the samples are the encoded ones; a grid that disagrees with them is a damaged (or hostile) bundle,
        # and must not decide how much is rendered
        if _grid(Signal(media).geometry()) != _grid(b.meta["geometry"]):
            raise NeofieldError(f"{candidate}: its geometry does not match the piece of {original} it was encoded "
                                "from: the bundle is damaged")
        plan = plan_decode(b.meta)
        channels = (b.meta["geometry"].get("audio") or {}).get("channels", 0)
        check_cost(decode_cost(plan, channels, probe_speed(b.field)), limits)
        report = compare(media, render_media(b.field, b.meta, plan), per_frame)
        split = {f"bytes_{part}": n for part, n in bundle_io.stored_bytes(candidate.read_bytes(), limits).items()}
        for key, value in size_report(candidate.stat().st_size, media).items():
            report[key] = value
            if key == "bytes":  # where the bytes go, right under their total
                report.update(split)
        return report
    tag = read_decode_tag(candidate)
    if selection is None and tag is not None:
        selection = _tag_selection(tag)
    media = read_media(original, selection or Selection())
    if tag is not None and tag["original_grid"] and selection == _tag_selection(tag) \
            and fingerprint(media) != tag["source"].get("sha256"):
        raise NeofieldError(f"{original} is not the media {candidate} was decoded from "
                            f"(its bundle was encoded from {tag['source'].get('name')!r})")
    other = read_media(candidate)
    if media.kind != other.kind and {media.kind, other.kind} != {"video", "audiovisual"}:
        raise NeofieldError(f"cannot compare {media.kind} with {other.kind}")
    report = compare(media, other, per_frame)
    if tag is not None and tag.get("field_quality"):
        for key, value in tag["field_quality"].items():
            if key.endswith("_psnr_db") and key in report:
                report[f"field_{key}"] = value  # the bundle's own score on this grid
                report[f"{key[:-8]}_output_loss_db"] = round(value - report[key], 4)
    return report


def _grid(geometry: dict) -> tuple:
    """The numbers of a geometry that decide what is rendered."""
    v, a = geometry.get("video") or {}, geometry.get("audio") or {}
    return (tuple(v.get(k) for k in ("width", "height", "frames", "fps")),
            tuple(a.get(k) for k in ("sample_rate", "channels", "samples")))


def _tag_selection(tag: dict) -> Selection:
    """The original's piece a decoded file shows: the bundle's selection, narrowed
    to the decode's time range when it was a part."""
    stored = Selection.from_dict(tag["source"].get("selection") or {})
    if tag.get("original_grid"):
        return stored
    grids = tag.get("grid", {})
    starts = [g["start"] for g in grids.values()]
    ends = [g["start"] + g["seconds"] for g in grids.values()]
    if not starts:
        return stored
    return Selection(stored.start + min(starts), max(ends) - min(starts), None, stored.resize)


def _describe(sel: Selection) -> str:
    parts = [f"start {sel.start:g} s"]
    if sel.duration is not None:
        parts.append(f"for {sel.duration:g} s")
    if sel.max_frames is not None:
        parts.append(f"at most {sel.max_frames} frames")
    if sel.resize is not None:
        parts.append(f"resized to {sel.resize[0]}x{sel.resize[1]}")
    return ", ".join(parts)
