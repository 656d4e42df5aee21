"""The fit's schedule: learning rate by step, and a time budget turned into steps (neofield.schedule)."""

import math

from neofield.fit import FitConfig
from neofield.schedule import budget_steps, lr_at, peak_lr, planned_seconds, planned_steps, seconds_per_step


def test_schedule_warms_up_linearly_then_decays_to_its_floor():
    cfg = FitConfig(lr=1e-2, warmup_steps=10, final_lr_ratio=0.1)
    assert math.isclose(lr_at(0, 100, cfg), 1e-3)
    assert math.isclose(lr_at(9, 100, cfg), 1e-2)
    assert lr_at(50, 100, cfg) < 1e-2
    assert math.isclose(lr_at(100, 100, cfg), 1e-3)


def test_a_fit_planned_past_its_tuned_steps_starts_lower_in_proportion():
    cfg = FitConfig(lr=1e-2, warmup_steps=10, final_lr_ratio=0.1, lr_steps=3000)
    assert peak_lr(cfg, 3000) == 1e-2 and peak_lr(cfg, 1000) == 1e-2  # at or under the tuned steps: as given
    assert math.isclose(peak_lr(cfg, 12_000), 2.5e-3)  # four times as long: a quarter
    assert math.isclose(lr_at(9, 12_000, cfg), 2.5e-3)  # warmed up to it
    assert math.isclose(lr_at(12_000, 12_000, cfg), 2.5e-4)  # and decayed to the floor of it
    assert peak_lr(FitConfig(lr=1e-2), 12_000) == 1e-2  # no tuned steps: no rule


def test_before_the_plan_the_rate_warms_up_to_lr_and_holds():
    cfg = FitConfig(lr=1e-2, warmup_steps=10, lr_steps=3000)
    assert math.isclose(lr_at(4, None, cfg), 5e-3)
    assert lr_at(500, None, cfg) == 1e-2


def test_a_time_budget_allows_the_steps_the_measured_speed_fits_in_it_and_no_more_than_a_limit():
    config = FitConfig(time_budget=100.0)
    # 10 steps a second measured since step 5 (at 1 s): 90 s left at step 95 -> 900 more
    assert budget_steps(config, None, 95, 10.0, (5, 1.0)) == 95 + 900
    assert budget_steps(config, 500, 95, 10.0, (5, 1.0)) == 500  # the user's step limit also holds
    assert budget_steps(config, None, 95, 150.0, (5, 1.0)) == 95  # never fewer than already taken
    assert math.isclose(seconds_per_step(95, 10.0, (5, 1.0)), 0.1)
    assert math.isclose(planned_seconds(config, 95, 2000, 10.0, (5, 1.0)), 100.0)  # capped by the budget


def test_planned_steps_are_the_fewer_of_the_step_and_epoch_limits():
    assert planned_steps(FitConfig(steps=50, epochs=2.0, batch_size=100), 1000) == 20
    assert planned_steps(FitConfig(epochs=0.01, batch_size=100), 1000) == 1
    assert planned_steps(FitConfig(time_budget=5.0), 1000) is None


def test_a_replan_waits_for_steps_timed_past_a_compile_or_a_resume():
    from neofield.schedule import PROBE_SKIP, REPLAN_MIN_STEPS, timed_past

    assert timed_past(5 + REPLAN_MIN_STEPS, (5, 3.0))
    assert not timed_past(4 + REPLAN_MIN_STEPS, (5, 3.0))  # too few steps since the mark
    compiled_at = 400
    assert not timed_past(1000, (5, 3.0), compiled_at)  # the steps since the mark include the compile
    assert not timed_past(compiled_at + PROBE_SKIP + 5, (compiled_at + PROBE_SKIP, 30.0), compiled_at, None)
    assert timed_past(compiled_at + PROBE_SKIP + REPLAN_MIN_STEPS, (compiled_at + PROBE_SKIP, 30.0), compiled_at, None)
