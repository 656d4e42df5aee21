"""The optimisation loop: a Signal's sampler, a field, Adam, and a schedule.

It knows nothing about files or terminals; progress goes to a callback that
the CLI turns into a Rich display (or that a script ignores), and checkpoints
(:class:`neofield.checkpoint.FitState`) to another that the caller stores.

A fit survives what would otherwise end it: a loss or gradient that stops
being finite rolls the fit back to its last in-memory snapshot at half the
learning rate, and Ctrl-C or SIGTERM stops it between two steps with a
checkpoint from which ``fit(..., resume=state)`` continues exactly.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import distributed
from .checkpoint import FitState
from .errors import NeofieldError
from .latent_rate import RateTerm, rated
from .options import check_device
from .pricing import Pricing
from .probe import masked_mse, mse_to_psnr
from .qat import QuantizationAware, perturb
from .runtime import COMPILE_MODES, autocast, compiled, compiler_available, flush_denormals
from .sampling import ErrorMap
from .schedule import (
    PROBE_SECONDS,
    PROBE_SKIP,
    REPLAN_AT,
    budget_steps,
    lr_at,
    planned_seconds,
    planned_steps,
    seconds_per_step,
    timed_past,
)
from .signal import Draw, Signal
from .stopping import StopRequest, interrupts

# what the progress line says while torch.compile builds the step (15-25 s for a preset-sized field on 2 cores; the
# whole of bikes' 1 M-parameter grid took ~45 s)
COMPILING = "compiling the training step (torch.compile; 15-45 s on 2 cores, the longer for a larger field)"
DEFAULT_BATCH = 1024
"""Points per step. At equal time on a CPU, more smaller steps win (2 s of bikes at 320x136, 45 s: batch
512 / 1,024 / 2,048 / 4,096 gave 26.37 / 26.51 / 25.69 / 25.04 dB; Bach: 36.59 vs 34.83 dB at 4,096)."""


@dataclass(frozen=True)
class FitConfig:
    """How long and how fast to fit. At least one of steps/epochs/time_budget
    should be set; whichever ends first stops the fit."""

    lr: float = 3e-3
    warmup_steps: int = 50
    final_lr_ratio: float = 0.05  # cosine decays to this fraction of lr
    lr_steps: int | None = None  # a fit planned longer starts its decay from lr * lr_steps / steps (schedule.peak_lr)
    batch_size: int = DEFAULT_BATCH
    steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # seconds of optimisation
    seed: int = 0
    device: str = "auto"
    grad_clip: float | None = 1.0
    adam_beta2: float = 0.999  # how long Adam's second moment remembers: a latent grid's nodes forget sooner
    report_every: int = 10
    deterministic: bool = True  # bit-identical reruns for a seed; costs ~6 % speed on CPU
    precision: str = "auto"  # float32 | bfloat16 matmuls; auto: bfloat16 where native (runtime.resolve_precision)
    compile: str = "auto"  # torch.compile the training step: on | off | auto (CPU fits with minutes left)
    sampling: str = "error"  # a picture's points: drawn by the field's error (neofield.sampling) | uniform
    quantization: QuantizationAware | None = None
    rate: RateTerm | None = None  # a rate term on the latents (--lambda): MSE + lambda * their bits per point
    checkpoint_every: float | None = None  # seconds between checkpoints handed to fit's on_checkpoint
    checkpoint_min_seconds: float = 0.0  # ... only once the plan says the fit takes at least this long

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("quantization", "rate")}
        if self.quantization is not None:
            out["quantization_aware"] = {"fraction": self.quantization.fraction, "mode": self.quantization.mode}
        if self.rate is not None:
            out["rate"] = self.rate.to_dict()
        return out

    RECORD = ("lr", "warmup_steps", "batch_size", "steps", "epochs", "time_budget", "seed", "device", "precision",
              "quantization_aware", "rate")

    def record(self) -> dict:
        """The settings a bundle keeps of its fit: the ones a user sets (every byte of metadata counts
        against a 6 KB target)."""
        return {k: v for k, v in self.to_dict().items()
                if k in self.RECORD and v is not None and not (k == "precision" and v == "auto")}


@dataclass
class FitProgress:
    """One report from the loop (``planned`` is True once, when the step count is fixed)."""

    step: int
    total_steps: int | None  # None until a time budget has been turned into steps
    loss: float  # running (EMA) masked MSE in field units
    psnr: float  # 10 log10(4 / loss): peak-to-peak 2 in field units
    points_per_second: float
    elapsed: float
    eta: float
    lr: float
    planned: bool = False
    note: str = ""  # a one-off event worth telling the user (compiling, falling back to eager, a rollback)


@dataclass
class FitResult:
    steps: int
    seconds: float
    final_loss: float
    points_per_second: float
    lam: float | None = None  # the rate term's lambda at the end (where a size or PSNR target steered it)

    def to_dict(self) -> dict:
        out = {"steps": self.steps, "seconds": round(self.seconds, 3), "final_loss": self.final_loss,
               "points_per_second": round(self.points_per_second, 1)}
        if self.lam is not None:
            out["lambda"] = float(f"{self.lam:.4g}")
        return out


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the fit. ``state`` is where it stopped (between two
    steps; at the last snapshot if a second signal cut a step short), and the field
    holds its weights; ``checkpointed`` says whether ``on_checkpoint`` got it."""

    def __init__(self, state: FitState, result: FitResult, checkpointed: bool):
        super().__init__(f"interrupted at step {state.step}")
        self.state, self.result, self.checkpointed = state, result, checkpointed


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; a named device must exist (see :func:`check_device`)."""
    device = check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)




SNAPSHOT_EVERY = 100  # steps between in-memory snapshots that a divergence rolls back to
MAX_ROLLBACKS = 5  # divergences survived (each halving the learning rate); the next one ends the fit
ROW_SPARSE_RATIO = 4
"""A row-sparse parameter (``row_sparse``) is reduced row by row in a data-parallel fit when it has this many
times more rows than a step has points; else DDP's dense all-reduce, with the rest, costs less."""
COMPILE_MIN_SECONDS = 150.0
"""``compile="auto"`` compiles when at least this much fitting is left. On two EPYC cores inductor's kernels
ran the training step 23-25 % faster (float32 and bfloat16) after 11-18 s of compiling, which pays back
after about 80 s (docs/cpu-defaults.md)."""
SAMPLINGS = ("error", "uniform")
EAGER_KINDS = ("audiovisual",)  # the kinds of signal --compile auto leaves eager, where a field names none


def fit(field: nn.Module, signal: Signal, config: FitConfig,
        callback: Callable[[FitProgress], None] | None = None, *,
        on_checkpoint: Callable[[FitState], None] | None = None, resume: FitState | None = None,
        parallel: bool = True) -> FitResult:
    """Fit ``field`` to ``signal`` in place and return what it cost.

    A time budget is turned into a step count after a short probe of the
    loop's speed, so the schedule still ends on its floor; the run also stops
    hard when the budget is spent.

    ``on_checkpoint`` receives a :class:`FitState` every ``config.checkpoint_every``
    seconds and when Ctrl-C or SIGTERM stops the fit (which then raises
    :class:`FitInterrupted`; the handlers are the fit's own while it runs and
    restored after). ``resume`` continues from such a state: with the same field,
    signal and config, a fit resumed with ``deterministic=True`` ends on the very
    weights of one never stopped (a time budget has what the state left of it).

    In a process group (``torchrun``; :mod:`neofield.distributed`) and with
    ``parallel``, the fit is data-parallel: each process draws its share of
    ``config.batch_size`` (the global batch) and DDP averages the gradients;
    only rank 0 calls ``callback`` and ``on_checkpoint``.
    """
    if config.steps is None and config.epochs is None and config.time_budget is None:
        raise NeofieldError("give a number of --steps, --epochs or a --time-budget")
    if config.sampling not in SAMPLINGS:
        raise NeofieldError(f"sampling must be one of {', '.join(SAMPLINGS)}, not {config.sampling!r}")
    if config.compile not in COMPILE_MODES:
        raise NeofieldError(f"--compile must be one of {', '.join(COMPILE_MODES)}, not {config.compile!r}")
    if config.compile == "on" and not compiler_available(resolve_device(config.device)):
        raise NeofieldError("--compile on needs a C++ compiler (g++ or clang++; Triton on CUDA); "
                            "use --compile off or auto")
    if config.rate is not None:
        if not (math.isfinite(config.rate.lam) and config.rate.lam >= 0 and config.rate.step > 0):
            raise NeofieldError(f"--lambda must be a number >= 0, not {config.rate.lam!r}")
        if config.quantization is None:
            raise NeofieldError("a rate term needs quantized weights (--dtype quantized): it prices their symbols")
        try:
            rated(field)
        except ValueError as e:
            raise NeofieldError(f"--lambda: {e}") from None
    if config.checkpoint_every is not None and not config.checkpoint_every > 0:
        raise NeofieldError(f"checkpoint_every must be > 0 seconds, not {config.checkpoint_every!r}")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    try:
        with flush_denormals(), interrupts() as stop:
            return _fit(field, signal, config, callback, on_checkpoint, resume, stop,
                        distributed.world() if parallel else distributed.World())
    finally:
        torch.use_deterministic_algorithms(previous)


def _fit(field: nn.Module, signal: Signal, config: FitConfig,
         callback: Callable[[FitProgress], None] | None, on_checkpoint: Callable[[FitState], None] | None,
         resume: FitState | None, stop: StopRequest, world: distributed.World) -> FitResult:
    device = resolve_device(config.device)
    field.to(device).train()
    batch = distributed.local_batch(config.batch_size, world.size)  # this process's share of every step
    sync = distributed.StepSync(world, device)
    if not world.main:  # rank 0 speaks and writes for all
        callback = on_checkpoint = None
    sample_gen = torch.Generator().manual_seed(distributed.rank_seed(config.seed, world.rank))
    # where the pictures' points are drawn: by a map of the field's error, each rank's from its own points
    errors = error_map(signal) if config.sampling == "error" else None
    # a field may bring its own optimiser (a nu-set's latent table: neofield.sets.field); groups may scale the rate
    make = getattr(field, "make_optimizer", None)
    opt = make(config.lr) if make else torch.optim.Adam(field.parameters(), lr=config.lr,
                                                         betas=(0.9, config.adam_beta2))
    mixed = autocast(device, config.precision)
    # the rate term (lambda times the latents' bits per point) and the state it carries: lambda, steered to a
    # size or a PSNR, and the scales it prices the latents with
    pricing = Pricing(field, signal, config.rate) if config.rate is not None else None
    penalty = pricing.penalty if pricing is not None else None
    priced = pricing.name if pricing is not None else ""  # the table it rounds, rather than QAT

    total = planned_steps(config, signal.n_points)  # None when only a time budget is given
    final = config.time_budget is None  # a budget revises the step count after the speed probe
    user_total = total
    announced = False
    replans = list(REPLAN_AT) if config.time_budget is not None else []
    levels, q_start = None, 0  # of quantization-aware finetuning, once it starts
    ema, step, spent = None, 0, 0.0
    lr_scale, rollbacks = 1.0, 0  # each divergence rolled back halves the rate from then on
    periodic = config.checkpoint_every is not None and config.checkpoint_min_seconds <= 0  # else decided by the plan
    if resume is not None:
        _restore(field, opt, sample_gen, resume, config, total, errors)
        if not world.main:  # the checkpoint holds rank 0's sampler: the others take streams of their own
            sample_gen.manual_seed(distributed.rank_seed(config.seed + resume.step, world.rank))
        step, total, final, announced, ema, spent = (resume.step, resume.total, resume.final, resume.announced,
                                                     resume.ema, resume.elapsed)
        replans, levels, q_start = list(resume.replans), resume.levels, resume.q_start
        if pricing is not None:
            try:
                pricing.load(resume.lam, resume.scales)
            except ValueError as e:
                raise NeofieldError(f"the checkpoint does not fit this model ({e})") from None
        lr_scale, rollbacks = resume.lr_scale, resume.rollbacks
        periodic = config.checkpoint_every is not None and (periodic or resume.periodic)
    t_start = time.perf_counter() - spent
    mark = (step, spent)  # (step, seconds) that speed is timed from: past the slow first steps, then the last plan
    # a field may name parameters of which a point touches one row (a nu-set's latent table): when a step's
    # batch touches few of them, only those rows are averaged across the ranks, not the whole table
    sparse = {name: p for name, p in field.named_parameters() if world.size > 1
              and name in getattr(field, "row_sparse", ()) and len(p) > ROW_SPARSE_RATIO * config.batch_size}
    if world.size > 1:
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(field, list(sparse))
        distributed.broadcast_from_main(sparse.values())  # DDP starts the rest from rank 0's weights
    # the module each step calls (DDP's wrapper in a process group: it all-reduces the gradients in the backward
    # pass, and starts every rank from rank 0's weights), and the step it was compiled at
    model = field if world.size == 1 else nn.parallel.DistributedDataParallel(
        field, device_ids=[torch.cuda.current_device() if device.index is None else device.index]
        if device.type == "cuda" else None, forward_sync_buffers=False)
    forward, compiled_at = model, None
    resumed_at = step if resume is not None else None
    if resume is not None:
        _report(callback, step, total if final else None, ema, config, spent, lr=config.lr * lr_scale,
                note=f"resuming from step {step:,} of " + (f"{total:,}" if final else
                                                           f"a {config.time_budget:g} s budget, {spent:.0f} s spent"))
        if resume.compiled:  # the fit it continues was compiled: so is this one (the same kernels)
            forward, compiled_at = compiled(model), step
            _report(callback, step, total if final else None, ema, config, spent, lr=config.lr * lr_scale,
                    note=COMPILING)
    snapshot: FitState | None = None  # the last state known good, that a divergence goes back to
    last_checkpoint = time.perf_counter()

    def capture() -> FitState:
        return FitState(step=step, total=total, final=final, announced=announced, ema=ema,
                        elapsed=time.perf_counter() - t_start,
                        field={k: v.detach().clone() for k, v in field.state_dict().items()},
                        optimizer=copy.deepcopy(opt.state_dict()), sampler=sample_gen.get_state(),
                        levels=dict(levels) if levels is not None else None, q_start=q_start, lr_scale=lr_scale,
                        rollbacks=rollbacks, replans=list(replans), compiled=compiled_at is not None,
                        periodic=periodic, lam=pricing.lam if pricing else None,
                        scales=pricing.scales if pricing else None,
                        errors=errors.error.clone() if errors is not None else None)

    def roll_back(what: str, at: int) -> None:
        nonlocal step, ema, levels, q_start, lr_scale, rollbacks, snapshot
        if snapshot is None or rollbacks >= MAX_ROLLBACKS:
            again = f", again after {rollbacks} rollbacks that halved the learning rate" if rollbacks else ""
            raise NeofieldError(f"the fit diverged at step {at} ({what}){again}; try a lower --lr")
        field.load_state_dict(snapshot.field)
        opt.load_state_dict(copy.deepcopy(snapshot.optimizer))  # loading would share the snapshot's tensors
        step, ema, levels, q_start = snapshot.step, snapshot.ema, snapshot.levels, snapshot.q_start
        if pricing is not None:
            pricing.load(snapshot.lam, snapshot.scales)
        if errors is not None:
            errors.load(snapshot.errors)
        lr_scale, rollbacks = lr_scale * 0.5, rollbacks + 1
        snapshot = None  # taken again at once, with the new rate
        _report(callback, step, total if final else None, ema, config, time.perf_counter() - t_start,
                lr=lr_scale * config.lr,
                note=f"{what} at step {at}: rolled back to step {step}, learning rate halved")

    def interrupted(state: FitState) -> FitInterrupted:
        written = False
        if on_checkpoint is not None:
            on_checkpoint(state)
            written = True
        field.eval()
        result = FitResult(steps=state.step, seconds=state.elapsed,
                           final_loss=state.ema if state.ema is not None else float("nan"),
                           points_per_second=state.step * config.batch_size / max(state.elapsed, 1e-9),
                           lam=state.lam)
        return FitInterrupted(state, result, written)

    try:
        while True:
            # rank 0's clock and any rank's stop request: every rank takes the decisions below alike
            elapsed, stopping = sync.clock(time.perf_counter() - t_start, stop.signum is not None)
            if stopping:  # Ctrl-C or SIGTERM: stop here, where the state is whole
                raise interrupted(capture())
            if periodic and on_checkpoint is not None and \
                    time.perf_counter() - last_checkpoint >= config.checkpoint_every:
                on_checkpoint(capture())
                last_checkpoint = time.perf_counter()
            if snapshot is None or step % SNAPSHOT_EVERY == 0:
                if not _finite(field):
                    roll_back("the weights were not finite", step)
                    continue
                snapshot = capture()
            if step == PROBE_SKIP or (compiled_at is not None and step == compiled_at + PROBE_SKIP) or (
                    resumed_at is not None and step == resumed_at + PROBE_SKIP):
                mark = (step, elapsed)  # compiling (or resuming) made the steps before this one slow
            probed = (step >= min(10, total) if final else
                      (step >= 20 and elapsed >= PROBE_SECONDS) or (total is not None and step >= total))
            if probed and not announced:
                if not final:
                    total, final = budget_steps(config, user_total, step, elapsed, mark), True
                announced = True
                if config.checkpoint_every is not None and not periodic:  # worth it for a long fit only
                    periodic = planned_seconds(config, step, total, elapsed, mark) >= config.checkpoint_min_seconds
                _report(callback, step, total, ema, config, elapsed, planned=True, lr=opt.param_groups[0]["lr"])
                if sync.from_main(_should_compile(config, device, step, total, elapsed, mark, signal.kind,
                                                  getattr(field, "eager_kinds", EAGER_KINDS))):
                    forward, compiled_at = compiled(model), step
                    _report(callback, step, total, ema, config, elapsed, lr=opt.param_groups[0]["lr"],
                            note=COMPILING)
            elif announced and replans and levels is None and elapsed >= replans[0] * config.time_budget and \
                    timed_past(step, mark, compiled_at, resumed_at):
                # again, at the recent speed: the probe's few seconds can misjudge a loop that speeds up (bfloat16
                # kernels warming up made a 90 s budget stop at 52 s) or slows down (a 600 s fit reached its
                # deadline before the end of its schedule)
                replans.pop(0)
                total, mark = budget_steps(config, user_total, step, elapsed, mark), (step, elapsed)
            if (final and step >= total) or (config.time_budget is not None and elapsed >= config.time_budget):
                break
            q = config.quantization
            # finetuning takes the last share of the steps, in the cosine's tail; or of the time when a budget
            # is about to stop the fit early (a slower machine than the probe measured must not skip it)
            if q and final and levels is None and (step >= total * (1 - q.fraction) or (
                    config.time_budget is not None and elapsed >= config.time_budget * (1 - q.fraction))):
                levels, q_start = sync.from_main(q.levels(field) if callable(q.levels) else q.levels), step
            lr = lr_at(step, total if final else None, config)  # warm-up, then hold until the plan is known
            if levels is not None:  # finetuning anneals further, to a tenth of the tail's rate: weights settle
                lr *= 1 - 0.9 * min(1.0, (step - q_start) / max(total - q_start, 1))
            lr *= lr_scale  # 1 unless a divergence was rolled back
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            if pricing is not None:  # the weights are whole here
                pricing.refresh(field, step, total, final, sync)
            drawn = signal.draw(batch, sample_gen, errors) if errors is not None else \
                Draw(*signal.sample(batch, sample_gen))
            coords, target, mask = (t.to(device, non_blocking=True) for t in drawn[:3])
            weight = drawn.weight.to(device, non_blocking=True) if drawn.weight is not None else None
            saved = perturb(field, {k: v for k, v in levels.items() if k != priced}, q.mode, sample_gen) \
                if levels is not None else None
            if pricing is not None:  # the latents a step's noise from their values, or rounded once finetuning
                saved = [*(saved or []), pricing.perturb(levels is not None, sample_gen)]
            opt.zero_grad(set_to_none=True)
            try:
                loss, point_errors = _forward_backward(forward, coords, target, mask, mixed, penalty, weight)
            except Exception as e:  # inductor failed to build its kernels (compiler, headers): go on eagerly
                if step != compiled_at:
                    raise
                forward, compiled_at = model, None
                opt.zero_grad(set_to_none=True)
                _report(callback, step, total if final else None, ema, config, time.perf_counter() - t_start,
                        lr=lr, note=f"torch.compile failed ({type(e).__name__}); fitting without it")
                loss, point_errors = _forward_backward(forward, coords, target, mask, mixed, penalty, weight)
            for p in sparse.values():  # none in one process
                if p.grad is not None:
                    distributed.all_reduce_rows(p.grad, world.size, min(len(p), batch))
            if saved is not None:  # the gradient was taken at the quantized weights; apply it to the float ones
                with torch.no_grad():
                    for p, value in saved:
                        p.copy_(value)
            norm = nn.utils.clip_grad_norm_(field.parameters(), config.grad_clip) if config.grad_clip else None
            value, norm = sync.loss_and_norm(loss, norm)  # the whole batch's loss, on every rank
            if not (math.isfinite(value) and math.isfinite(norm)):  # diverged: this step is not taken
                roll_back(f"the loss was {value}" if not math.isfinite(value) else f"the gradient norm was {norm}",
                          step + 1)
                continue
            opt.step()
            if errors is not None:  # each video point's squared error, per channel
                errors.update(drawn.tile, point_errors[:len(drawn.tile)] / signal.video_channels)
            step += 1
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            if step % config.report_every == 0 or (final and step == total):
                _report(callback, step, total if final else None, ema, config, time.perf_counter() - t_start,
                        lr=lr)
    except FitInterrupted:
        raise
    except KeyboardInterrupt:  # a second signal cut a step short: go back to the last state known whole
        if snapshot is None:
            raise
        field.load_state_dict(snapshot.field)
        raise interrupted(snapshot) from None
    if sync.clock(0.0, stop.signum is not None)[1]:  # asked to stop as the last step ended: the checkpoint
        raise interrupted(capture())                  # resumes to the end at once
    seconds = time.perf_counter() - t_start
    field.eval()
    return FitResult(steps=step, seconds=seconds, final_loss=ema if ema is not None else float("nan"),
                     points_per_second=step * config.batch_size / max(seconds, 1e-9),
                     lam=pricing.lam if pricing else None)


def error_map(signal) -> ErrorMap | None:
    """The error map a fit draws a signal's pictures by: None for a signal without pictures, or one that
    draws its own points (a nu-set's)."""
    if not isinstance(signal, Signal) or signal.video is None:
        return None
    return ErrorMap(*signal.video.shape[:3])


def _restore(field: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, state: FitState,
             config: FitConfig, planned: int | None, errors: ErrorMap | None = None) -> None:
    """Load a checkpoint's field, optimiser, sampler and error map, after checking it is this fit's."""
    if config.time_budget is None and state.final and state.total != planned:
        raise NeofieldError(f"the checkpoint is of a fit of {state.total} steps, not {planned}: resume it with "
                            "the same --steps, --epochs and --batch-size")
    try:
        field.load_state_dict(state.field)
        opt.load_state_dict(copy.deepcopy(state.optimizer))
        gen.set_state(state.sampler)
        if errors is not None and state.errors is not None:  # a checkpoint of before the map: it starts afresh
            errors.load(state.errors)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NeofieldError(f"the checkpoint does not fit this model ({first})") from None


@torch.no_grad()
def _finite(field: nn.Module) -> bool:
    return bool(torch.stack([torch.isfinite(p).all() for p in field.parameters()]).all())


def _forward_backward(forward: Callable, coords: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      mixed, penalty: Callable[[], torch.Tensor] | None = None,
                      weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch's MSE, after the backward pass of it and of ``penalty`` (the rate term) added to it; with
    importance weights (``weight``), the weighted MSE, which is the whole signal's in expectation, and each
    point's squared error summed over its channels."""
    with mixed:
        pred = forward(coords)
    if weight is None:
        loss, errors = masked_mse(pred, target, mask), None
    else:
        errors = ((pred.float() - target) ** 2 * mask).sum(1)
        loss = (weight * errors).sum() / mask.sum().clamp_min(1)
        errors = errors.detach()
    (loss + penalty() if penalty is not None else loss).backward()
    return loss, errors


def _should_compile(config: FitConfig, device: torch.device, step: int, total: int, elapsed: float,
                    mark: tuple[int, float], kind: str, eager_kinds: tuple[str, ...] = EAGER_KINDS) -> bool:
    """``on``; or ``auto`` on a CPU when the plan leaves minutes of eager fitting, which compiling shortens.

    Decided once, when the plan is made. CUDA stays eager under ``auto``: not measured there; so do the kinds
    of signal whose compiled step a field has measured slower (its ``eager_kinds``; by default video with
    sound: neogrid's compiled step of 1 s of Big Buck Bunny ran 12.5 ms against 10 eager, and the paper's
    field's was not measured, and keeps eager with it).
    """
    if config.compile != "auto":
        return config.compile == "on"
    if device.type != "cpu" or kind in eager_kinds:
        return False
    return (total - step) * seconds_per_step(step, elapsed, mark) >= COMPILE_MIN_SECONDS and \
        compiler_available(device)


def _report(callback, step, total, ema, config, elapsed, lr, planned=False, note="") -> None:
    if callback is None:
        return
    pps = step * config.batch_size / max(elapsed, 1e-9)
    eta = (total - step) * elapsed / step if step and total else float("nan")
    loss = ema if ema is not None else float("nan")
    callback(FitProgress(step=step, total_steps=total, loss=loss, psnr=mse_to_psnr(loss) if ema else float("nan"),
                         points_per_second=pps, elapsed=elapsed, eta=eta, lr=lr, planned=planned, note=note))
