"""How long a fit runs and at what rate: the learning-rate schedule, and a time budget turned into steps.

A time budget is a number of steps only once the loop's speed is known: :mod:`neofield.fit` times its
first seconds, then plans with :func:`budget_steps` (again at a few shares of the budget), so that the
cosine schedule still ends on its floor when the time runs out.
"""

from __future__ import annotations

import math
from typing import Any

FitConfig = Any  # a neofield.fit.FitConfig (lr, lr_steps, warmup_steps, final_lr_ratio, steps, epochs, batch_size,
#                   time_budget)

PROBE_SECONDS = 3.0  # how long to time the loop before turning a time budget into steps
PROBE_SKIP = 5  # first steps left out of the speed probe: kernel set-up makes them several times slower
REPLAN_AT = (0.25, 0.5, 0.75)  # shares of a time budget at which its step count is estimated again
REPLAN_MIN_STEPS = 20  # ... each from at least this many steps since the last mark


def peak_lr(config: FitConfig, total: int | None) -> float:
    """The rate the schedule starts its decay from: ``lr``, or for a fit planned longer than ``lr_steps``
    steps, ``lr * lr_steps / total``. A latent grid priced by a rate term was tuned at ~3,000 steps, and five
    times as many at that rate end at a worse rate-distortion loss than 3,000 (its latents drift outward); a
    quarter of the rate over ~13,000 steps ends ahead (docs/rate-term.md, "A learning rate that falls with
    the steps"). Unknown until the plan: the warm-up and the few seconds before it run at ``lr``."""
    if total is None or config.lr_steps is None or total <= config.lr_steps:
        return config.lr
    return config.lr * config.lr_steps / total


def lr_at(step: int, total: int | None, config: FitConfig) -> float:
    """Linear warm-up to :func:`peak_lr`, then cosine decay to ``final_lr_ratio`` of it; warmed up to ``lr``
    and held there while ``total`` is None (a time budget not yet turned into steps).

    The warm-up matters: at the paper's rate with none, NeoMLP sits at the
    signal mean for minutes on a CPU (docs/cpu-defaults.md).
    """
    peak = peak_lr(config, total)
    warm = config.warmup_steps if total is None else min(config.warmup_steps, max(total - 1, 1))
    if step < warm:
        return peak * (step + 1) / warm
    if total is None:
        return peak
    progress = min(1.0, (step - warm) / max(total - warm, 1))
    floor = config.final_lr_ratio
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def seconds_per_step(step: int, elapsed: float, mark: tuple[int, float]) -> float:
    """Seconds a step has taken since ``mark`` (step, seconds): past the slow first steps, or the last plan."""
    start_step, start_time = mark if step > mark[0] else (0, 0.0)
    return (elapsed - start_time) / max(step - start_step, 1)


def timed_past(step: int, mark: tuple[int, float], *slow_from: int | None) -> bool:
    """Whether the steps since ``mark`` can time the loop: enough of them, and none among the slow ones after
    an event in ``slow_from`` (a compile, a resume; the ``PROBE_SKIP`` steps from each, until the mark moves
    past them). A replan timed over a 25 s compile once planned a 100 s fit of Bach to end at 34 s."""
    return step - mark[0] >= REPLAN_MIN_STEPS and all(at is None or mark[0] >= at + PROBE_SKIP for at in slow_from)


def planned_seconds(config: FitConfig, step: int, total: int, elapsed: float, mark: tuple[int, float]) -> float:
    """How long the whole fit will take at the speed measured so far."""
    seconds = elapsed + (total - step) * seconds_per_step(step, elapsed, mark)
    return min(seconds, config.time_budget) if config.time_budget is not None else seconds


def budget_steps(config: FitConfig, user_total: int | None, step: int, elapsed: float,
                 mark: tuple[int, float]) -> int:
    """Steps a time budget allows at the speed measured since ``mark`` (step, seconds), never
    more than a step or epoch limit the user also gave, never fewer than already taken."""
    start_step, start_time = mark if step > mark[0] else (0, 0.0)
    rate = (step - start_step) / max(elapsed - start_time, 1e-9)
    steps = step + int((config.time_budget - elapsed) * rate)
    return max(min(user_total, steps) if user_total else steps, step)


def planned_steps(config: FitConfig, n_points: int) -> int | None:
    """The steps the step and epoch limits allow (the fewer), or None when only a time budget is given."""
    options = []
    if config.steps is not None:
        options.append(config.steps)
    if config.epochs is not None:
        options.append(max(1, math.ceil(config.epochs * n_points / config.batch_size)))
    return min(options) if options else None
