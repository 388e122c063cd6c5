"""--compare's and the trials' rules, without training: which devices, how many steps a window times,
the epoch's fixed cost, the projection and its interval, the slice of the data a clone trains on.
(tests/test_compare.py and tests/test_whatif.py train.)"""

import dataclasses

import numpy as np
import pytest

from colab_magic import comparison, trials
from colab_magic.comparison import _is_clone_problem
from colab_magic.parts import Epoch
from colab_magic.trials import Plan, as_run, fixed_costs, head, plan_window
from colab_magic.variants import AS_IS, CATALOGUE
from tests import builders


def epoch(n, time_s, steps_s, val_s=0.0, steps=10):
    return Epoch(epoch=n, time_s=time_s, train_s=time_s - val_s, val_s=val_s, steps=steps, steps_s=steps_s,
                 step_median_s=steps_s / steps if steps else None, complete=True, energy_j=[])


def test_devices_default_all_and_requested(monkeypatch):
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cpu:0", "gpu:0", "gpu:1"])
    assert comparison.devices_to_compare() == ["cpu:0", "gpu:0"]
    assert comparison.devices_to_compare(["all"]) == ["cpu:0", "gpu:0", "gpu:1"]
    assert comparison.devices_to_compare(["GPU:1", "cpu:0"]) == ["gpu:1", "cpu:0"]
    with pytest.raises(ValueError) as err:
        comparison.devices_to_compare(["gpu:0", "tpu:0", "gpu:7"])
    assert str(err.value) == "tpu:0, gpu:7 not among the devices Keras sees: cpu:0, gpu:0, gpu:1"
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cuda:0"])  # no CPU listed: cpu:0 all the same
    assert comparison.devices_to_compare() == ["cpu:0", "cuda:0"]


def test_the_devices_keras_sees_here():
    assert comparison._keras_devices()[0] == "cpu:0"


def plan(**changes) -> Plan:
    values = dict(model=None, config={}, weights=None, arguments={}, batch_size=32, steps_per_epoch=1000,
                  fixed_s=None, fixed_range=None, fit_steps=None, epoch_s=10.0)
    values.update(changes)
    return Plan(**values)


@pytest.mark.parametrize("step_s, spent, budget, spe, steps", [
    (0.01, 0.1, None, 1, 100),  # 0.5 s of 10 ms steps, planned twice over (the stop ends it at 0.5 s)
    (0.1, 0.1, None, 1, 20),  # 0.5 s is 10 steps so planned: the fewest for a stable mean, 20, instead
    (0.0, 0.1, None, 1, 20),  # no estimate (no step after the warm-up): the fewest
    (0.015625, 0.25, 1.5, 1, 64),  # 1.25 s left: the 64 steps planned fit
    (0.015625, 0.25, 0.6875, 1, 28),  # 0.4375 s left: the 28 steps that fit
    (0.015625, 0.25, 0.5625, 1, 20),  # 20 steps fit: the fewest, exactly
    (0.015625, 0.25, 0.546875, 1, 20),  # 19 fit: the fewest all the same (the cost line says the --budget that fits)
    (0.001, 0.1, None, 32, 1024),  # 1,000 steps: 32 executions of 32
    (0.1, 0.1, None, 32, 128),  # at least 4 executions with 32 steps per execution
])
def test_a_window_times_half_a_second_within_its_budget(step_s, spent, budget, spe, steps):
    assert plan_window(plan(), step_s, spent, budget, spe).steps == steps


def test_a_window_is_at_most_an_epoch_and_never_under_the_fewest_steps():
    assert plan_window(plan(steps_per_epoch=30), 0.001, 0.0, None).steps == 30  # a whole epoch is shorter
    assert plan_window(plan(steps_per_epoch=5), 0.001, 0.0, None).steps == 20  # never under the fewest
    assert plan_window(plan(steps_per_epoch=None), 0.001, 0.0, None).steps == 1000
    assert plan_window(plan(), 0.01, 0.45, 0.5).steps == 20  # the budget spent: the fewest all the same
    assert plan_window(plan(min_steps=8), 1.0, 0.0, None).steps == 8  # --steps 8


def test_a_window_is_planned_from_the_fastest_warm_up_step_and_paid_for_at_the_mean():
    # warm-up steps of 1 ms at the fastest, 3 ms on average: 0.5 s twice over at 1 ms
    assert plan_window(plan(steps_per_epoch=None), 0.003, 0.0, None, fastest_s=0.001).steps == 1000
    # the budget at the mean: 0.3 s left holds 100 steps of 3 ms
    assert plan_window(plan(steps_per_epoch=None), 0.003, 0.0, 0.3, fastest_s=0.001).steps == 100


def test_fixed_cost_from_the_epochs_after_the_first():
    first, second, third = epoch(1, 3.0, 1.0), epoch(2, 1.5, 1.0), epoch(3, 1.7, 1.0, val_s=0.5)
    assert fixed_costs(builders.report(epochs=[first, second, third])) == pytest.approx([0.5, 0.2])
    assert fixed_costs(builders.report(epochs=[first])) == pytest.approx([2.0])  # only the first: it is all there is
    empty = epoch(2, 9.0, 0.0, steps=0)  # an epoch with no steps (a fit cut at its start) does not count
    assert fixed_costs(builders.report(epochs=[first, empty])) == pytest.approx([2.0])
    assert fixed_costs(builders.report(epochs=[])) == [] and fixed_costs(None) == []


def timed(steps_s, batch=64, spe=1):
    report = builders.report(device="GPU:0", gpus=[builders.gpu()], batch_size=batch, step=None,
                             epochs=[epoch(1, 0.5, 0.3), epoch(2, 0.5, 0.4)])
    step = builders.steps(sum(steps_s) / len(steps_s), n=len(steps_s))
    step.mean = sum(steps_s) / len(steps_s)
    return dataclasses.replace(report, step=step, step_times=list(steps_s), steps_per_execution=spe)


def test_a_trial_projected_to_the_users_epoch_with_its_interval():
    window = [0.01] * 10 + [0.012] * 10  # two halves: the blocks scatter
    run = as_run(plan(fixed_s=0.25, fixed_range=(0.2, 0.3)), "GPU:0", AS_IS, timed(window), None, "compare")
    assert (run.kind, run.device, run.steps_per_epoch, run.variant) == ("compare", "GPU:0", 1000, None)
    mean = 0.011
    assert run.step_mean_s == pytest.approx(mean) and run.samples_per_s == pytest.approx(64 / mean)
    assert run.projected_epoch_s == pytest.approx(1000 * mean + 0.25)
    assert (run.timed_steps, run.timed_s) == (20, pytest.approx(0.22))
    lo, hi = run.step_mean_interval_s
    assert lo < mean < hi
    # the epoch's interval: the steps' interval, and the fixed cost's least and most
    assert run.projected_epoch_interval_s == pytest.approx((1000 * lo + 0.2, 1000 * hi + 0.3))
    # a batch four times larger: the same samples in a quarter of the steps
    big = as_run(plan(fixed_s=0.25, fixed_range=(0.25, 0.25)), "GPU:0", CATALOGUE["batch_x4"],
                    timed(window, batch=256), None, "whatif")
    assert big.steps_per_epoch == 250 and big.variant == "batch x4"
    assert big.projected_epoch_s == pytest.approx(250 * mean + 0.25)


def test_a_trial_with_nothing_to_project_or_measure():
    own = timed([0.01] * 20)
    warm = builders.report(epochs=[epoch(1, 0.5, 0.4, steps=6)])
    run = as_run(plan(), "GPU:0", AS_IS, own, warm, "compare")  # no fixed cost from the user's fit: the warm-up's
    assert run.projected_epoch_s == pytest.approx(1000 * 0.01 + 0.1)
    unknown = as_run(plan(steps_per_epoch=None), "GPU:0", AS_IS, own, None, "compare")
    assert unknown.projected_epoch_s is None and unknown.steps_per_epoch is None
    own = dataclasses.replace(own, batch_size=None)
    assert as_run(plan(), "GPU:0", AS_IS, own, None, "compare").samples_per_s is None
    own = dataclasses.replace(own, step=None)
    assert as_run(plan(), "GPU:0", AS_IS, own, None, "compare").projected_epoch_s is None
    nothing = as_run(plan(), "CPU:0", AS_IS, None, None, "compare")
    assert (nothing.device, nothing.kind, nothing.step_mean_s) == ("CPU:0", "compare", None)


def test_steps_per_execution_counts_every_step_of_a_timed_execution():
    run = as_run(plan(), "CPU:0", CATALOGUE["steps_per_execution"], timed([0.001] * 5, spe=32), None, "whatif")
    assert run.timed_steps == 160 and run.timed_s == pytest.approx(0.16)


def test_the_budget_that_would_hold_trials_whose_compiling_alone_went_over():
    # within the budget, or over it with compiling under it (the window could have been shorter): nothing
    assert trials.needed_budget(1.0, 0.5, 1.0, 0.1) is None
    assert trials.needed_budget(1.5, 0.9, 1.0, 0.1) is None
    assert trials.needed_budget(1.5, 1.2, None, 0.1) is None
    # a 10 s epoch (1.0 s is 10% of it): 1.5 s of trials need 15%; 1.51 s round up to the next 5, 20
    assert trials.needed_budget(1.5, 1.2, 1.0, 0.1) == 15
    assert trials.needed_budget(1.51, 1.2, 1.0, 0.1) == 20
    assert trials.needed_budget(50.0, 20.0, 1.0, 0.1) == 500  # over what --budget takes: the view says so


def test_least_cost_of_a_trial_from_the_users_fit():
    report = builders.report(first_step_s=0.7, step=0.01)
    # compiling, then the first step, the warm-up steps and the fewest timed ones at the mean step
    assert trials.least_cost_s(report, 20) == pytest.approx(0.7 + (1 + trials.WARMUP_STEPS + 20) * report.step.mean)
    assert trials.least_cost_s(None) is None
    assert trials.least_cost_s(dataclasses.replace(report, step=None)) is None


def test_a_clone_trains_on_the_head_of_the_data():
    x = np.arange(100).reshape(50, 2)
    assert head(x, 10).shape == (10, 2) and head(x, 50) is x
    around = head(x, 80)  # a window longer than the data goes round it again
    assert around.shape == (80, 2) and (around[50:] == x[:30]).all() and (around[:50] == x).all()
    pair = head((x, np.arange(50)), 5)
    assert isinstance(pair, tuple) and [len(p) for p in pair] == [5, 5]
    listed = head([x, x], 5)
    assert isinstance(listed, list) and [len(p) for p in listed] == [5, 5]
    named = head({"a": x, "b": np.arange(50)}, 3)
    assert {k: len(v) for k, v in named.items()} == {"a": 3, "b": 3}
    scalar = np.float32(1.0)
    assert head(scalar, 3) is scalar
    mixed = [x, "label"]
    assert head(mixed, 3) is mixed and head({"a": x, "b": 1}, 3)["a"] is x
    gen = iter([1])
    assert head(gen, 3) is gen


@pytest.mark.parametrize("exc, clone_problem", [
    (TypeError("Layer Mine does not implement get_config"), True),  # the one word that says so
    (TypeError("Could not deserialize: from_config failed"), True),
    (ValueError("cannot clone a subclassed model"), True),
    (TypeError("object is not serializable"), True),
    (NotImplementedError(), True),
    (ValueError("shapes do not match"), False),
])
def test_what_counts_as_a_model_that_cannot_be_cloned(exc, clone_problem):
    assert _is_clone_problem(f"{type(exc).__name__}: {exc}") is clone_problem


def test_one_cpu_and_whatever_it_is_called(monkeypatch):
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cpu:0", "cpu:1", "gpu:0", "gpu:1"])
    assert comparison.devices_to_compare() == ["cpu:0", "gpu:0"]
    assert comparison.devices_to_compare(["all"]) == ["cpu:0", "gpu:0", "gpu:1"]
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cpu:1", "gpu:0"])
    assert comparison.devices_to_compare() == ["cpu:1", "gpu:0"]


def test_a_clone_is_summarised_as_the_device_it_ran_on():
    clone = builders.report(device="CPU:0", gpus=[], batch_size=32, step=0.01, epochs=[])
    # no epoch anywhere to measure the fixed cost on: none
    run = as_run(plan(steps_per_epoch=100), "GPU:1", AS_IS, clone, None, "compare")
    assert run.device == "GPU:1" and run.projected_epoch_s == pytest.approx(1.0)


def test_an_explicit_steps_is_bounded_by_the_epoch_and_the_budget():
    """--steps 100000000 once ran for minutes (tf.data) or needed 1.86 TiB (arrays): a trial never
    times more than an epoch, nor more than the budget leaves, beyond the default fewest steps."""
    assert plan_window(plan(min_steps=100_000, steps_per_epoch=300), 0.001, 0.0, None).steps == 300
    # no epoch known: the budget bounds it (0.5 s left of 1 ms steps: 500)
    assert plan_window(plan(min_steps=100_000, steps_per_epoch=None), 0.001, 0.0, 0.5).steps == 500
    # both: the smaller (0.1 s left of 1 ms steps: 100, less a float's rounding)
    assert plan_window(plan(min_steps=100_000, steps_per_epoch=300), 0.001, 0.4, 0.5).steps in (99, 100)
    # the default fewest steps still hold when the budget is spent
    assert plan_window(plan(min_steps=100_000, steps_per_epoch=300), 0.001, 0.6, 0.5).steps == 20
    # under the bounds, --steps is kept as asked; with several steps per execution, whole executions
    assert plan_window(plan(min_steps=50, steps_per_epoch=300), 1.0, 0.0, None).steps == 50
    assert plan_window(plan(min_steps=100_000, steps_per_epoch=300), 0.001, 0.0, None, spe=32).steps == 320


def test_a_change_costs_its_own_warm_up_and_fewest_window_beyond_the_model_as_it_is():
    step = 0.005
    as_is = 1 + trials.WARMUP_STEPS + 20 + 1  # warm-up and the fewest window, and the timed call's first step
    assert trials.extra_cost_s(CATALOGUE["mixed_precision"], 20, step) == 0.0
    assert trials.extra_cost_s(CATALOGUE["jit_compile"], 20, step) == 0.0
    # steps_per_execution=32: one execution to warm up, at least 4 timed, and the timed call's first
    assert trials.extra_cost_s(CATALOGUE["steps_per_execution"], 20, step) == pytest.approx((32 + 128 + 32 - as_is) * step)
    # batch x4: the same steps, each four times the work
    assert trials.extra_cost_s(CATALOGUE["batch_x4"], 20, step) == pytest.approx(3 * as_is * step)
