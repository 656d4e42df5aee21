"""``encode``: media -> signal -> fitted field -> ``.nf`` bundle, as a short pipeline of named stages.

    check options -> read media -> resolve defaults -> build the field -> fit -> store -> measure -> write

Every stage is a function of its own below :func:`encode`; rate control (:mod:`neofield.rate`) steps in
at three of them: it sizes the field when it is built; during the fit it steers the rate term's lambda (a
size target on the default field) or chooses the bit depths when quantization-aware finetuning starts; and
it checks the size once more when the weights are stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from .. import __version__, distributed, operating_point, rate
from .. import bundle as bundle_io
from .. import checkpoint as ckpt
from ..errors import NeofieldError
from ..fields.layouts import default_segments
from ..fields.neogrid import without_idle_taps
from ..fields.neomlp import PRESETS
from ..fields.registry import ADAM_BETA2, AUTO_PRECISION, BATCHES, GRID_AUDIO_SHARE, LR_STEPS, RATES, batch_for
from ..files import check_output
from ..fit import DEFAULT_BATCH, FitConfig, FitInterrupted, FitProgress, FitResult, fit
from ..latent_rate import RateTerm
from ..media import Selection, fingerprint, read_media
from ..quantize import BitDepths
from ..render import plan_decode
from ..signal import Signal
from .build import default_preset, field_builder, rff_sigma_for
from .options import EncodeOptions
from .quality import measure


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


def encode(source: str | Path, output: str | Path | None = None, options: EncodeOptions | None = None, *,
           callback: Callable[[FitProgress], None] | None = None,
           on_signal: Callable[[Signal, nn.Module, dict], None] | None = None, **kwargs) -> EncodeReport:
    """Fit a neural field to a media file and write it as a ``.nf`` bundle.

    The options are an :class:`EncodeOptions`, or its fields as keywords (``time_budget=120``), checked
    before the media is read. With no stopping rule the fit stops after ``DEFAULT_EPOCHS`` epochs or
    ``DEFAULT_TIME_BUDGET`` seconds, whichever comes first. ``on_signal`` is called once the media is
    read and the field built, with the budget (the command line prints the plan there); ``callback``
    gets the fit's progress.

    ``size`` (bytes, or text such as ``"20KB"``), ``bitrate`` (bits per second, or ``"300k"``) or
    ``target_psnr`` (dB) hand the model width and the bit depths to rate control (:mod:`neofield.rate`);
    the report's ``target`` says what was reached, and by how much and why a target was missed. With none
    of them, nor ``bits`` nor ``rate_lambda``, the default field's latents are fitted for their own rate at
    the default lambda of the signal's kind (:func:`neofield.operating_point.default_lambda`).

    A fit writes a checkpoint (``OUTPUT.ckpt``, :mod:`neofield.checkpoint`) every ``checkpoint_every``
    seconds (``"auto"``: every 60 s once the plan says the fit takes over 2 minutes; ``None`` or
    ``"off"``: never), and whenever Ctrl-C or SIGTERM stops it, which then raises
    :class:`EncodeInterrupted` (after writing the bundle of the field as it is, with
    ``save_on_interrupt``). ``resume=True`` continues from that checkpoint, given the same options and
    source; the checkpoint is removed once the bundle is written.

    In a process group (``torchrun``, :mod:`neofield.distributed`) the fit is data-parallel; rank 0
    checkpoints, measures and writes, and the other ranks return a report of the fit alone (``bytes`` 0,
    no quality).
    """
    options = EncodeOptions.of(options, **kwargs).check()
    source = Path(source)
    output = Path(output) if output is not None else source.with_suffix(".nf")
    saved = checkpoint_to_resume(output, options)
    signal = read_signal(source, options)
    run = resolve(options, signal)
    meta = signal_metadata(signal, source, options.selection or Selection())
    meta.update(weights_dtype=run.weights_dtype, preset=run.preset)
    field_, width, control = build_field(signal, run, meta, saved, ckpt.path_for(output),
                                         by_budget=options.preset is None)
    if options.depths() is None and run.rate_lambda is not None and run.weights_dtype == bundle_io.QUANTIZED:
        run = dataclasses.replace(run, bits=backbone_depths(run, signal, field_))
    if options.batch_size is None:  # a latent grid's batch grows with it (registry.batch_for)
        run = dataclasses.replace(run, batch_size=batch_for(run.arch, signal.kind, field_.num_parameters()["total"],
                                                            run.batch_size))
    fingerprint_ = {"neofield": __version__, "source": {"bytes": source.stat().st_size,
                                                       "sha256": meta["source"]["sha256"],
                                                       "selection": meta["source"]["selection"]},
                    **run.fingerprint()}
    if saved is not None:
        ckpt.check_fingerprint(saved, fingerprint_, ckpt.path_for(output))
    steered = isinstance(control, rate.SteeredRate)
    depths = control.choose if control and not steered else run.bits
    term = control.term(field_) if steered else rate_term(run, signal, field_)
    config = fit_config(run, quantization=bundle_io.quantization_aware(field_, depths)
                        if run.weights_dtype == bundle_io.QUANTIZED else None,
                        rate=term, lr_steps=LR_STEPS.get(run.arch) if term is not None else None)
    if on_signal:
        on_signal(signal, field_, {**options.budget(), "batch_size": run.batch_size, "lambda": run.rate_lambda,
                                   "lambda_default": options.rate_lambda is None})
    result = fit_and_keep(field_, signal, config, run, meta, output, fingerprint_, width, control, saved, callback)
    field_.cpu()
    if not distributed.is_main():  # a data-parallel fit's other processes: rank 0 has the same weights, and writes
        return EncodeReport(path=output, bytes=0, kind=signal.kind, parameters=field_.num_parameters(),
                            fit=result, budget=options.budget(), quality={})
    field_, symbols, bits, latents = store(field_, run, control, config.rate, result.lam)
    quality = measure(field_, signal, result.points_per_second) if run.evaluate else {}
    meta.update(fit={**result.to_dict(), "config": config.record()}, quality=quality)
    nbytes = write(output, field_, meta, symbols, bits, latents, run.force)
    report = EncodeReport(path=output, bytes=nbytes, kind=signal.kind, parameters=field_.num_parameters(),
                          fit=result, budget=options.budget(), quality=quality)
    if control:
        report.target = control.outcome(nbytes, quality, width)
    return report


# ---------------------------------------------------------------- stages ----
def checkpoint_to_resume(output: Path, options: EncodeOptions) -> ckpt.Checkpoint | None:
    """The checkpoint ``--resume`` continues (a missing or damaged one fails now), after checking that
    neither a checkpoint nor the output would be overwritten unasked: before minutes of fitting, not after."""
    ckpt.resolve_interval(options.checkpoint_every)
    path = ckpt.path_for(output)
    saved = ckpt.load(path) if options.resume else None
    if not options.resume and path.exists() and not options.force:
        raise NeofieldError(f"{path} holds an interrupted encode: add --resume to continue it, or --force "
                            "to start over")
    check_output(output, options.force)
    return saved


def read_signal(source: Path, options: EncodeOptions) -> Signal:
    """The media as field coordinates and values, checked to be a grid the bundle can represent."""
    media = read_media(source, options.selection or Selection())
    share = options.audio_share
    if share is None and options.arch in GRID_AUDIO_SHARE and media.video is not None and media.audio is not None:
        share = GRID_AUDIO_SHARE[options.arch]
    signal = Signal(media, audio_share=share)
    if isinstance(options.rff_sigma, tuple) and len(options.rff_sigma) != signal.coordinate_map.in_features:
        raise NeofieldError(f"--rff-sigma needs one value or {signal.coordinate_map.in_features} "
                            f"(one per input: {'x, y, t' if signal.coordinate_map.x else 't'})")
    check_round_trip(signal)
    return signal


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


def resolve(options: EncodeOptions, signal: Signal) -> EncodeOptions:
    """The options with every default that depends on the signal filled in: what the fit is, and what its
    checkpoint's fingerprint holds (the preset and its or the baseline's rate, one latent set per frame, the
    sound's Fourier sigma, the stopping rules, the storage depths, a bitrate as bytes, and on a quantized
    neogrid field given no target, depths or lambda, the default lambda of :func:`operating_point.default_lambda`)."""
    preset = options.preset or default_preset(signal.kind)
    lr, warmup = PRESETS[preset].lr, PRESETS[preset].warmup_steps
    if options.arch != "neomlp":  # a baseline's own rate and warm-up, unless given
        lr, warmup = RATES[options.arch]
    size = rate.parse_bytes(options.size) if isinstance(options.size, str) else options.size
    if options.bitrate is not None:
        size = (rate.parse_bitrate(options.bitrate, signal.duration) if isinstance(options.bitrate, str)
                else max(1, round(options.bitrate * signal.duration / 8)))
    rff_sigma = options.rff_sigma
    if rff_sigma is None and signal.media.audio is not None:  # once, not for every width rate control tries
        rff_sigma = rff_sigma_for(signal, preset)
    budget = options.budget()
    rate_lambda = options.rate_lambda
    if rate_lambda is None and steers(options) and not options.targets() and options.depths() is None:
        rate_lambda = operating_point.default_lambda(signal.kind)  # no operating point named: a constant RD slope
    precision = AUTO_PRECISION.get(options.arch, "auto") if options.precision == "auto" else options.precision
    return dataclasses.replace(
        options, preset=preset, segments=options.segments or default_segments(signal), lr=options.lr or lr,
        warmup_steps=warmup if options.warmup_steps is None else options.warmup_steps, rff_sigma=rff_sigma,
        size=size, bitrate=None, rate_lambda=rate_lambda,
        bits=bundle_io.storage_bits(options.weights_dtype, options.depths()), latent_bits=None,
        steps=budget["steps"], epochs=budget["epochs"], time_budget=budget["time_budget"],
        precision=precision, batch_size=options.batch_size or BATCHES.get(options.arch, DEFAULT_BATCH))


def build_field(signal: Signal, run: EncodeOptions, meta: dict, saved: ckpt.Checkpoint | None, ckpt_path: Path,
                by_budget: bool = True) -> tuple[nn.Module, int | None, rate.RateControl | rate.SteeredRate | None]:
    """The fresh field, the size rate control chose for it (None: the preset's), and the rate control: a
    target on a quantized neogrid field is met by steering the rate term (:class:`rate.SteeredRate`). A rate
    term at a fixed lambda decides the bytes itself, so its field gets as many parameters as the signal and
    the time budget train (:func:`rate.steered_parameters`) unless a preset was asked for (``by_budget``)."""
    build = field_builder(signal, run)
    target = rate.Target(run.size, run.target_psnr) if run.targets() else None
    steered = target is not None and steers(run)
    if saved is not None:
        width = saved.extra.get("width")  # what rate control chose before the fit, not searched again
        if width is not None and width not in rate.ladder(run.arch):
            raise NeofieldError(f"{ckpt_path} is a damaged neofield checkpoint (model size {width!r})")
    elif steered:
        width = rate.steered_parameters(target.bytes, signal.n_points, run.time_budget)
    elif run.rate_lambda is not None and by_budget:
        width = rate.steered_parameters(None, signal.n_points, run.time_budget)
    else:
        width = (rate.width_for_size(build, target.bytes, rate.SIDE_BYTES, rate.ladder(run.arch))
                 if target and target.bytes else None)
    field_ = build(width)
    if steered:
        probe = rate.PsnrProbe(signal) if target.psnr is not None else None
        return field_, width, rate.SteeredRate(target, meta, signal.n_points, run.bits, probe)
    control = rate.RateControl(target, signal, meta) if target else None
    if saved is not None and control is not None and saved.extra.get("rate_control"):
        control.restore(saved.extra["rate_control"])  # the depths the finetuning already trains for
    return field_, width, control


def fit_config(run: EncodeOptions, **overrides) -> FitConfig:
    """The fit loop's settings from resolved options (:func:`resolve`); ``neofield set fit`` uses it too."""
    every, min_fit = ckpt.resolve_interval(run.checkpoint_every)
    config = FitConfig(lr=run.lr, warmup_steps=run.warmup_steps, batch_size=run.batch_size, steps=run.steps,
                       epochs=run.epochs, time_budget=run.time_budget, seed=run.seed, device=run.device,
                       precision=run.precision, compile=run.compile_mode, checkpoint_every=every,
                       checkpoint_min_seconds=min_fit, adam_beta2=ADAM_BETA2.get(run.arch, 0.999))
    return dataclasses.replace(config, **overrides)


def fit_and_keep(field_: nn.Module, signal: Signal, config: FitConfig, run: EncodeOptions, meta: dict,
                 output: Path, fingerprint_: dict, width: int | None, control: rate.RateControl | None,
                 saved: ckpt.Checkpoint | None, callback) -> FitResult:
    """Fit, checkpointing as the config says; on Ctrl-C or SIGTERM keep what the options ask for (the
    checkpoint, and with ``save_on_interrupt`` the bundle as it is) and raise :class:`EncodeInterrupted`."""
    ckpt_path = ckpt.path_for(output)

    def write_checkpoint(state: ckpt.FitState) -> None:
        extra = {"width": width}
        if control is not None and state.levels is not None:  # finetuning began: its depths were chosen
            extra["rate_control"] = control.to_dict()
        ckpt.save(ckpt_path, state, fingerprint_, extra)

    try:
        return fit(field_, signal, config, callback, on_checkpoint=write_checkpoint,
                   resume=saved.state if saved is not None else None)
    except FitInterrupted as stop:
        written = None
        if run.save_on_interrupt and distributed.is_main():  # the field as it is, through the usual rounding
            field_.cpu()
            stored, symbols, bits, latents = store(field_, run, control, config.rate, stop.result.lam)
            meta.update(fit={**stop.result.to_dict(), "interrupted": True, "config": config.record()}, quality={})
            written = output
            write(output, stored, meta, symbols, bits, latents, run.force, keep_checkpoint=True)
        state = stop.state
        raise EncodeInterrupted(state.step, state.total if state.final else None,
                                ckpt_path if stop.checkpointed else None, written) from None


def store(field_: nn.Module, run: EncodeOptions, control, term: RateTerm | None, lam: float | None):
    """Round the weights, in place, to what the bundle stores (rate control's final depths or latent step, if
    it ran): what the encoder then measures is what every decoder computes. Returns the field to store (without
    the taps of levels whose latents all round to 0: :func:`~neofield.fields.neogrid.without_idle_taps`), the
    symbols, the depths, and for a fit with a rate term its lambda (where it ended) and the latents' step (or
    None)."""
    if isinstance(control, rate.SteeredRate):
        bits, step = run.bits, control.finish(field_, lam)
    else:
        bits, step = (control.finish(field_) if control else run.bits), term.step if term else None
    latents = {"lambda": float(f"{lam if lam is not None else term.lam:.4g}"), "latent_step": step} \
        if term is not None else None
    if run.weights_dtype == bundle_io.QUANTIZED:
        field_ = without_idle_taps(field_, step)
    return field_, bundle_io.round_weights(field_, run.weights_dtype, bits, latent_step=step), bits, latents


def steers(run: EncodeOptions) -> bool:
    """Whether a size or PSNR target is met by steering the rate term: on a quantized neogrid field."""
    return run.arch == "neogrid" and run.weights_dtype == bundle_io.QUANTIZED


def rate_term(run: EncodeOptions, signal: Signal, field_: nn.Module) -> RateTerm | None:
    """The fit's rate term on the latents at a fixed lambda (``--lambda``), at the latents' step for this
    kind of signal, lambda and field (:func:`operating_point.fixed_step`); or None."""
    if run.rate_lambda is None:
        return None
    latents = getattr(field_, "latents", None)
    per_point = latents.table.numel() / signal.n_points if latents is not None else None
    return RateTerm(run.rate_lambda, operating_point.fixed_step(signal.kind, run.rate_lambda, per_point))


def backbone_depths(run: EncodeOptions, signal: Signal, field_: nn.Module) -> BitDepths:
    """The depths of a fit at a fixed lambda with none given: the backbone's as fine as the bytes that lambda
    spends can pay for (:func:`operating_point.backbone_bits`)."""
    weights = field_.num_parameters()["backbone"]
    bits = operating_point.backbone_bits(signal.kind, run.rate_lambda, signal.n_points, weights, run.bits.backbone)
    return dataclasses.replace(run.bits, backbone=bits)


def write(output: Path, field_: nn.Module, meta: dict, symbols, bits, latents: dict | None, force: bool,
          keep_checkpoint: bool = False) -> int:
    """The bundle, atomically; then the checkpoint has nothing left to resume (unless interrupted).
    ``latents``: the rate term's lambda and the latents' step, for a fit with one."""
    if meta["weights_dtype"] == bundle_io.QUANTIZED:
        meta["quantization"] = {"bits": bits.to_dict()} if latents is None else {
            "bits": {"backbone": bits.backbone}, **latents}
    nbytes = bundle_io.save(output, field_, meta, force=force, quantized=symbols)
    if not keep_checkpoint:
        ckpt.path_for(output).unlink(missing_ok=True)
    return nbytes


def signal_metadata(signal: Signal, source: Path, selection: Selection) -> dict:
    """Everything a decoder needs besides the weights (see docs/format.md)."""
    return {"neofield_version": __version__, **signal.layout(),
            "source": {"name": source.name, "selection": selection.to_dict(), "sha256": fingerprint(signal.media)}}

