"""The optimisation loop: a Signal's sampler, a field, Adam, and a schedule.

It knows nothing about files or terminals; progress goes to a callback that
the CLI turns into a Rich display (or that a script ignores).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import NeofieldError
from .options import check_device
from .quantize import fake_quantize
from .runtime import COMPILE_MODES, autocast, compiler_available, flush_denormals
from .signal import Signal


@dataclass(frozen=True)
class QuantizationAware:
    """Quantization-aware finetuning: the last ``fraction`` of the steps take the
    loss at the weights the bundle will store, so the fit learns to live with
    the rounding; over those steps the rate also anneals to a tenth of the
    cosine's, which lets the weights settle on their levels (at equal steps on
    2 s of bikes at 6 bits: -0.36 dB against float16 without it, -0.05 with it).

    ``round`` is the straight-through estimator: the forward pass sees the
    quantized weights, the gradient updates the float ones. ``noise`` adds
    uniform noise of one quantization step instead. Measured in
    docs/format.md: ``round`` is kept as the default.
    """

    # parameter name -> quantization levels; or a function of the field that decides them
    # when finetuning starts (rate control searches the depth on the field as it then is)
    levels: dict[str, int] | Callable[[nn.Module], dict[str, int]]
    fraction: float = 0.1
    mode: str = "round"

    def __post_init__(self) -> None:
        if self.mode not in ("round", "noise"):
            raise ValueError(f"mode must be round or noise, not {self.mode!r}")


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
    batch_size: int = DEFAULT_BATCH
    steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # seconds of optimisation
    seed: int = 0
    device: str = "auto"
    grad_clip: float | None = 1.0
    report_every: int = 10
    deterministic: bool = True  # bit-identical reruns for a seed; costs ~6 % speed on CPU
    precision: str = "auto"  # float32 | bfloat16 matmuls; auto: bfloat16 where native (runtime.resolve_precision)
    compile: str = "auto"  # torch.compile the training step: on | off | auto (CPU fits with minutes left)
    quantization: QuantizationAware | None = None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "quantization"}
        if self.quantization is not None:
            out["quantization_aware"] = {"fraction": self.quantization.fraction, "mode": self.quantization.mode}
        return out


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
    note: str = ""  # a one-off event worth telling the user (compiling, falling back to eager)


@dataclass
class FitResult:
    steps: int
    seconds: float
    final_loss: float
    points_per_second: float

    def to_dict(self) -> dict:
        return {"steps": self.steps, "seconds": round(self.seconds, 3), "final_loss": self.final_loss,
                "points_per_second": round(self.points_per_second, 1)}


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; a named device must exist (see :func:`check_device`)."""
    device = check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def lr_at(step: int, total: int, config: FitConfig) -> float:
    """Linear warm-up, then cosine decay to ``final_lr_ratio * lr``.

    The warm-up matters: at the paper's rate with none, NeoMLP sits at the
    signal mean for minutes on a CPU (docs/cpu-defaults.md).
    """
    warm = min(config.warmup_steps, max(total - 1, 1))
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(total - warm, 1))
    floor = config.final_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over the outputs each point owns: an audio-visual field's video points
    are scored on RGB only, its audio points on the audio channels only."""
    return ((pred.float() - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def mse_to_psnr(mse: float) -> float:
    """PSNR for values in [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")


PROBE_SECONDS = 3.0  # how long to time the loop before turning a time budget into steps
PROBE_SKIP = 5  # first steps left out of the speed probe: kernel set-up makes them several times slower
REPLAN_AT = (0.25, 0.5, 0.75)  # shares of a time budget at which its step count is estimated again
COMPILE_MIN_SECONDS = 150.0
"""``compile="auto"`` compiles when at least this much fitting is left. On two EPYC cores inductor's kernels
ran the training step 23-25 % faster (float32 and bfloat16) after 11-18 s of compiling, which pays back
after about 80 s (docs/cpu-defaults.md)."""


def fit(field: nn.Module, signal: Signal, config: FitConfig,
        callback: Callable[[FitProgress], None] | None = None) -> FitResult:
    """Fit ``field`` to ``signal`` in place and return what it cost.

    A time budget is turned into a step count after a short probe of the
    loop's speed, so the schedule still ends on its floor; the run also stops
    hard when the budget is spent.
    """
    if config.steps is None and config.epochs is None and config.time_budget is None:
        raise NeofieldError("give a number of --steps, --epochs or a --time-budget")
    if config.compile not in COMPILE_MODES:
        raise NeofieldError(f"--compile must be one of {', '.join(COMPILE_MODES)}, not {config.compile!r}")
    if config.compile == "on" and not compiler_available(resolve_device(config.device)):
        raise NeofieldError("--compile on needs a C++ compiler (g++ or clang++; Triton on CUDA); "
                            "use --compile off or auto")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    try:
        with flush_denormals():
            return _fit(field, signal, config, callback)
    finally:
        torch.use_deterministic_algorithms(previous)


def _fit(field: nn.Module, signal: Signal, config: FitConfig,
         callback: Callable[[FitProgress], None] | None) -> FitResult:
    device = resolve_device(config.device)
    field.to(device).train()
    sample_gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(field.parameters(), lr=config.lr)
    mixed = autocast(device, config.precision)

    total = _planned_steps(config, signal.n_points)  # None when only a time budget is given
    final = config.time_budget is None  # a budget revises the step count after the speed probe
    user_total = total
    announced = False
    replans = list(REPLAN_AT) if config.time_budget is not None else []
    levels, q_start = None, 0  # of quantization-aware finetuning, once it starts
    ema, t_start, step = None, time.perf_counter(), 0
    mark = (0, 0.0)  # (step, seconds) that speed is timed from: past the slow first steps, then the last plan
    forward, compiled_at = field, None  # the module each step calls, and the step it was compiled at
    while True:
        elapsed = time.perf_counter() - t_start
        if step == PROBE_SKIP or (compiled_at is not None and step == compiled_at + PROBE_SKIP):
            mark = (step, elapsed)  # compiling made the steps before this one slow
        probed = (step >= min(10, total) if final else
                  (step >= 20 and elapsed >= PROBE_SECONDS) or (total is not None and step >= total))
        if probed and not announced:
            if not final:
                total, final = _budget_steps(config, user_total, step, elapsed, mark), True
            announced = True
            _report(callback, step, total, ema, config, elapsed, planned=True, lr=opt.param_groups[0]["lr"])
            if _should_compile(config, device, step, total, elapsed, mark):
                forward, compiled_at = torch.compile(field, dynamic=False), step
                _report(callback, step, total, ema, config, elapsed, lr=opt.param_groups[0]["lr"],
                        note="compiling the training step (torch.compile; about 15 s on 2 cores)")
        elif announced and replans and levels is None and elapsed >= replans[0] * config.time_budget:
            # again, at the recent speed: the probe's few seconds can misjudge a loop that speeds up (bfloat16
            # kernels warming up made a 90 s budget stop at 52 s) or slows down (a 600 s fit reached its
            # deadline before the end of its schedule)
            replans.pop(0)
            total, mark = _budget_steps(config, user_total, step, elapsed, mark), (step, elapsed)
        if (final and step >= total) or (config.time_budget is not None and elapsed >= config.time_budget):
            break
        q = config.quantization
        # finetuning takes the last share of the steps, in the cosine's tail; or of the time when a budget
        # is about to stop the fit early (a slower machine than the probe measured must not skip it)
        if q and final and levels is None and (step >= total * (1 - q.fraction) or (
                config.time_budget is not None and elapsed >= config.time_budget * (1 - q.fraction))):
            levels, q_start = (q.levels(field) if callable(q.levels) else q.levels), step
        lr = lr_at(step, total if final else 10**9, config)  # warm-up, then hold until the plan is known
        if levels is not None:  # finetuning anneals further, to a tenth of the tail's rate: weights settle on levels
            lr *= 1 - 0.9 * min(1.0, (step - q_start) / max(total - q_start, 1))
        for group in opt.param_groups:
            group["lr"] = lr
        coords, target, mask = (t.to(device, non_blocking=True) for t in signal.sample(config.batch_size, sample_gen))
        saved = _perturb(field, levels, q.mode, sample_gen) if levels is not None else None
        opt.zero_grad(set_to_none=True)
        try:
            loss = _forward_backward(forward, coords, target, mask, mixed)
        except Exception as e:  # inductor failed to build its kernels (compiler, headers): go on eagerly
            if step != compiled_at:
                raise
            forward, compiled_at = field, None
            opt.zero_grad(set_to_none=True)
            _report(callback, step, total if final else None, ema, config, time.perf_counter() - t_start, lr=lr,
                    note=f"torch.compile failed ({type(e).__name__}); fitting without it")
            loss = _forward_backward(forward, coords, target, mask, mixed)
        if saved is not None:  # the gradient was taken at the quantized weights; apply it to the float ones
            with torch.no_grad():
                for p, value in saved:
                    p.copy_(value)
        if config.grad_clip:
            nn.utils.clip_grad_norm_(field.parameters(), config.grad_clip)
        opt.step()
        step += 1
        value = loss.item()
        if not math.isfinite(value):
            raise NeofieldError(f"the fit diverged at step {step} (loss {value}); try a lower --lr")
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        if step % config.report_every == 0 or (final and step == total):
            _report(callback, step, total if final else None, ema, config, time.perf_counter() - t_start, lr=lr)
    seconds = time.perf_counter() - t_start
    field.eval()
    return FitResult(steps=step, seconds=seconds, final_loss=ema if ema is not None else float("nan"),
                     points_per_second=step * config.batch_size / max(seconds, 1e-9))


def _forward_backward(forward: Callable, coords: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      mixed) -> torch.Tensor:
    with mixed:
        pred = forward(coords)
    loss = masked_mse(pred, target, mask)
    loss.backward()
    return loss


def _should_compile(config: FitConfig, device: torch.device, step: int, total: int, elapsed: float,
                    mark: tuple[int, float]) -> bool:
    """``on``; or ``auto`` on a CPU when the plan leaves minutes of eager fitting, which compiling shortens.

    Decided once, when the plan is made. CUDA stays eager under ``auto``: not measured there.
    """
    if config.compile != "auto":
        return config.compile == "on"
    if device.type != "cpu":
        return False
    start_step, start_time = mark if step > mark[0] else (0, 0.0)
    seconds_per_step = (elapsed - start_time) / max(step - start_step, 1)
    return (total - step) * seconds_per_step >= COMPILE_MIN_SECONDS and compiler_available(device)


@torch.no_grad()
def _perturb(field: nn.Module, levels_of: dict[str, int], mode: str, gen: torch.Generator) -> list:
    """Move the quantized parameters to where the bundle will put them (or a step's
    noise away); returns the float values to restore after the backward pass."""
    saved = []
    for name, p in field.named_parameters():
        levels = levels_of.get(name)
        if levels is None:
            continue
        saved.append((p, p.detach().clone()))
        if mode == "round":
            p.copy_(fake_quantize(p, levels))
        else:
            step = (p.max() - p.min()) / (levels - 1)
            p.add_((torch.rand(p.shape, generator=gen).to(p.device) - 0.5) * step)
    return saved


def _budget_steps(config: FitConfig, user_total: int | None, step: int, elapsed: float,
                  mark: tuple[int, float]) -> int:
    """Steps a time budget allows at the speed measured since ``mark`` (step, seconds), never
    more than a step or epoch limit the user also gave, never fewer than already taken."""
    start_step, start_time = mark if step > mark[0] else (0, 0.0)
    rate = (step - start_step) / max(elapsed - start_time, 1e-9)
    steps = step + int((config.time_budget - elapsed) * rate)
    return max(min(user_total, steps) if user_total else steps, step)


def _planned_steps(config: FitConfig, n_points: int) -> int | None:
    options = []
    if config.steps is not None:
        options.append(config.steps)
    if config.epochs is not None:
        options.append(max(1, math.ceil(config.epochs * n_points / config.batch_size)))
    return min(options) if options else None


def _report(callback, step, total, ema, config, elapsed, lr, planned=False, note="") -> None:
    if callback is None:
        return
    pps = step * config.batch_size / max(elapsed, 1e-9)
    eta = (total - step) * elapsed / step if step and total else float("nan")
    loss = ema if ema is not None else float("nan")
    callback(FitProgress(step=step, total_steps=total, loss=loss, psnr=mse_to_psnr(loss) if ema else float("nan"),
                         points_per_second=pps, elapsed=elapsed, eta=eta, lr=lr, planned=planned, note=note))
