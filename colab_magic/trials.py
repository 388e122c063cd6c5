"""One trial: a copy of a model the cell trained, on one device, with one change or none, timed for a
short, time-based window. ``--compare`` runs one trial per device, ``--whatif`` one per change.

A trial builds its copy under the device's scope (a model built on the GPU and reused under a CPU
scope can fail on TensorFlow), sets the weights the user's model had before its fit, and compiles
from the user's compile config with the variant's changes. It calls ``fit`` twice: a warm-up (the
first, compiling execution and a few steps after it, which run slower) that also estimates the step,
then the timed window, sized from that estimate and stopped once it holds enough. The user's model,
weights, optimizer and Keras' global dtype policy are never touched, also when a trial fails or is
interrupted.

A projected epoch is ``steps per epoch x mean step + the epoch's fixed cost``:
- the mean, not the median: an epoch is the sum of its steps, and step times are skewed (a CPU
  step's median sits 3-5% under its mean; on an H200 with JAX's async dispatch, 21%);
- the fixed cost (time in an epoch outside its steps and validation) is the user's fit's, measured:
  host-side work on the full data (iterator set-up, shuffling, callbacks) that a few steps on a
  slice of the data cannot show (3-7 s of some epochs with a 50,000-image array on TensorFlow,
  bench/results/README.md).
Its interval comes from :mod:`colab_magic.intervals`: the window's own scatter and the drift that
windows of the same length showed in the user's fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import frameworks, intervals
from .defaults import MIN_TIMED_STEPS
from .errors import describe
from .keras_loop import CapturedFit, KerasCall, KerasOptions, time_fit_call
from .observer import CellObserver, RunningFit
from .recorder import CellFits, FitOptions
from .report import FitReport
from .run_summary import RunSummary
from .variants import AS_IS, Variant, policy

TARGET_TIMED_S = 0.5  # of timed steps per trial: windows under this moved by 8-14% on 2 vCPUs
WARMUP_STEPS = 5  # after compiling, a fresh clone's first 5 steps ran 18% slower on average (bench/results/README.md)
PLAN_MARGIN = 2.0
MIN_EXECUTIONS = 4  # with several steps per execution: the fewest executions for a scatter between blocks


class TrialError(Exception):
    """Why no trial can run for this model (the comparison or what-if is then skipped, with this reason)."""


@dataclass
class Plan:
    """What every trial of one model shares: the model, its start, its data, the user's fit."""

    model: Any
    config: dict
    weights: list | None
    arguments: dict
    batch_size: int | None
    steps_per_epoch: int | None
    fixed_s: float | None  # the mean time an epoch of the user's fit spent outside its steps
    fixed_range: tuple[float, float] | None  # the least and most of it
    fit_steps: Sequence[float] | None  # the user's fit's step seconds in order (the drift of short windows)
    epoch_s: float | None  # the user's epoch, for the budget
    min_steps: int = MIN_TIMED_STEPS
    target_s: float = TARGET_TIMED_S

    @property
    def name(self) -> str:
        return getattr(self.model, "name", type(self.model).__name__)

    @classmethod
    def for_fit(cls, captured: CapturedFit, user_report: FitReport | None, min_steps: int = MIN_TIMED_STEPS) -> Plan:
        """Raises :class:`TrialError` when the model cannot be trained again elsewhere."""
        model = captured.model
        config = model.get_compile_config() if hasattr(model, "get_compile_config") else None
        if not config:
            raise TrialError("the model was not compiled with compile(), so it cannot be compiled again elsewhere")
        x = captured.arguments.get("x")
        if inspect.isgenerator(x) or (hasattr(x, "__next__") and not hasattr(x, "element_spec")):
            raise TrialError("the fit read its data from a Python generator, which it used up: a trial needs data "
                             "it can read again (arrays, a tf.data.Dataset or a keras.utils.PyDataset)")
        fixed = fixed_costs(user_report)
        return cls(
            model=model,
            config=config,
            weights=captured.weights,
            arguments=captured.arguments,
            batch_size=user_report.batch_size if user_report else None,
            steps_per_epoch=user_report.steps_per_epoch if user_report else None,
            fixed_s=sum(fixed) / len(fixed) if fixed else None,
            fixed_range=outside_range(user_report),
            fit_steps=user_report.step_times if user_report else None,
            epoch_s=_epoch_s(user_report),
            min_steps=min_steps,
        )

    def budget_s(self, share: float) -> float | None:
        return share * self.epoch_s if self.epoch_s else None


def fixed_costs(report: FitReport | None) -> list[float]:
    """The time each epoch of ``report`` spent outside its steps and validation: the epochs after the
    first when there are some (Keras sets up the first epoch's iterator before the epoch starts, and
    each later epoch also waits for the previous iterator to shut down)."""
    closed = [e for e in (report.closed_epochs if report else []) if e.steps]
    return [e.outside_steps_s or 0.0 for e in (closed[1:] or closed)]  # a closed epoch always has one


def outside_range(report: FitReport | None) -> tuple[float, float] | None:
    """The least and the most time outside the steps of any epoch of the fit, the first included: the
    interval of a projected epoch spans both. That time comes and goes (with NumPy arrays on TensorFlow
    some epochs start with a stall of seconds, others with none: bench/epoch_start.py); a range from the
    later epochs alone missed the next epoch in 4 of 6 runs when the one epoch it had was of the other
    kind (issue 28)."""
    closed = [e for e in (report.closed_epochs if report else []) if e.steps]
    values = [e.outside_steps_s or 0.0 for e in closed]
    return (min(values), max(values)) if values else None


FEW_EPOCHS = 3  # with fewer, whether epochs stall at their start cannot be told from the fit


def _epoch_s(report: FitReport | None) -> float | None:
    if report is None:
        return None
    if report.epoch_mean_s:
        return report.epoch_mean_s
    if report.step and report.steps_per_epoch:
        return report.step.mean * report.steps_per_epoch
    return None


@contextlib.contextmanager
def stopped_by_ctrl_c(result: Any) -> Iterator[None]:
    """Ctrl-C in a trial ends the trials there: ``result.interrupted`` is set and what finished stays
    in ``result`` (the caller shows it, records it, then raises Ctrl-C again)."""
    try:
        yield
    except KeyboardInterrupt:
        result.interrupted = True


def device_scope(name: str) -> contextlib.AbstractContextManager:
    """``keras.device(name)``, except on torch for the device Keras uses anyway: there, a model built
    under keras.device() trains with no gradients (seen with Keras 3.15.1, torch 2.13 on the CPU)."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        default = "gpu" if torch.cuda.is_available() else "cpu"
        if name.split(":")[0] == default and name.endswith(":0"):
            return contextlib.nullcontext()
    return keras.device(name)


@contextlib.contextmanager
def global_policy(name: str | None) -> Iterator[None]:
    """Keras' global dtype policy set to ``name`` while a mixed-precision copy is built and compiled
    (the model's own policy decides loss scaling), and put back afterwards whatever happens."""
    if name is None:
        yield
        return
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build(plan: Plan, device_name: str, variant: Variant) -> Any:
    """The variant's copy of the model, built, weighted and compiled under ``device_name``'s scope."""
    import keras

    dtype = policy(variant, frameworks.normalise_device(device_name))
    last = plan.model.layers[-1] if getattr(plan.model, "layers", None) else None

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        if layer is not last:  # the output stays in float32, as Keras' mixed-precision guide says
            config["dtype"] = dtype
        return layer.__class__.from_config(config)

    with global_policy(dtype):
        clone = keras.models.clone_model(plan.model, clone_function=clone_layer if dtype else None)
        if plan.weights is not None:
            clone.set_weights(plan.weights)
        clone.compile_from_config({**plan.config, **variant.compile_changes})
    return clone


def inputs(plan: Plan, variant: Variant, steps: int) -> dict:
    """fit's keyword arguments for ``steps`` steps of the variant: a slice of the user's arrays (only
    what the steps use: converting a whole 50,000-image array again cost more than the steps), or
    the user's dataset, re-batched for a larger batch."""
    kwargs = {k: v for k, v in plan.arguments.items()
              if k in ("x", "y", "batch_size", "sample_weight", "class_weight", "shuffle")}
    batch = (kwargs.get("batch_size") or plan.batch_size or 32) * variant.batch_factor
    if variant.batch_factor > 1:
        if hasattr(kwargs.get("x"), "element_spec"):
            kwargs["x"] = kwargs["x"].unbatch().batch(batch, drop_remainder=True)
        else:
            kwargs["batch_size"] = batch
    if hasattr(kwargs.get("x"), "element_spec"):
        kwargs["x"] = kwargs["x"].repeat()  # a window longer than the dataset goes round it again
    for key in ("x", "y", "sample_weight"):
        if key in kwargs:
            kwargs[key] = head(kwargs[key], steps * batch)
    kwargs.update(epochs=1, steps_per_epoch=steps, verbose=0, callbacks=None)
    return kwargs


def head(data: Any, n: int) -> Any:
    """The first ``n`` samples of an array (or a list/tuple/dict of arrays), going round it again when
    it holds fewer; anything else as is."""
    if hasattr(data, "shape") and hasattr(data, "__getitem__") and len(data.shape):
        if data.shape[0] > n:
            return data[:n]
        if 0 < data.shape[0] < n:
            return np.resize(np.asarray(data), (n,) + tuple(data.shape[1:]))
        return data
    if isinstance(data, (list, tuple)) and all(hasattr(d, "shape") for d in data):
        return type(data)(head(d, n) for d in data)
    if isinstance(data, dict) and all(hasattr(d, "shape") for d in data.values()):
        return {k: head(v, n) for k, v in data.items()}
    return data


def fit_clone(clone: Any, options: FitOptions, window: CellObserver | None = None, **kwargs: Any) -> FitReport | None:
    """``clone.fit(**kwargs)`` timed and sampled: its FitReport, or None if none could be built.
    ``window``: what ends it early (a :class:`WindowStop`)."""
    bound = inspect.signature(type(clone).fit).bind(clone, **kwargs)
    fits = CellFits(options, window)
    time_fit_call(KerasCall(type(clone).fit, bound), KerasOptions(), fits)
    return fits.reports[0] if fits.reports else None


@dataclass
class Window:
    """How many steps a trial times, and why."""

    steps: int


def least_steps(min_steps: int, spe: int = 1) -> int:
    """The fewest steps a window times: ``min_steps``, and enough executions of ``spe`` steps for a
    scatter between blocks."""
    return max(min_steps, MIN_EXECUTIONS * spe) if spe > 1 else min_steps


class WindowStop(CellObserver):
    """A window's stop: requested once its timed steps hold ``target_s`` seconds and ``least`` steps.
    The timer records one time per step of each execution of ``spe``."""

    def __init__(self, target_s: float, least: int, spe: int = 1) -> None:
        self.target_s, self.least, self.spe = target_s, least, spe

    def stop_requested(self, fit: RunningFit) -> bool:
        steps = fit.timer.steps
        return steps.total * self.spe >= self.target_s and steps.count * self.spe >= self.least


def plan_window(plan: Plan, step_s: float, spent_s: float, budget_s: float | None, spe: int = 1,
                fastest_s: float | None = None) -> Window:
    """Steps to time after the warm-up: ``target_s`` of them (or a whole epoch, if shorter), at least
    :func:`least_steps`, and no more than the budget leaves; in whole executions of ``spe`` steps.
    ``step_s``: the warm-up's mean step, for the budget; ``fastest_s``: its fastest (default the mean),
    for the steps that ``target_s`` needs."""
    least = least_steps(plan.min_steps, spe)
    # --steps above the default is bounded by the epoch (a trial never times more than an epoch) and by
    # the budget: --steps 100000000 once ran for minutes on tf.data, and on arrays needed 1.86 TiB
    floor = least_steps(MIN_TIMED_STEPS, spe)
    if least > floor and plan.steps_per_epoch:
        least = max(floor, min(least, plan.steps_per_epoch))
    if least > floor and budget_s is not None and step_s > 0:
        least = max(floor, min(least, int(max(0.0, budget_s - spent_s) / step_s)))
    # planned twice over, from the fastest warm-up step: the steady steps can run faster than the
    # warm-up's mean (a tiny model's once by 2.7x: its window ended at 37 ms of a 50 ms target), and
    # the window's stop ends it once it holds target_s, so a plan too long costs nothing
    fastest = fastest_s or step_s
    want = max(least, math.ceil(PLAN_MARGIN * plan.target_s / fastest)) if fastest > 0 else least
    if plan.steps_per_epoch:
        want = min(want, max(plan.steps_per_epoch, least))
    if budget_s is not None:
        left = budget_s - spent_s
        affordable = int(left / step_s) if step_s > 0 and left > 0 else 0
        want = max(least, min(want, affordable))
    return Window(spe * math.ceil(want / spe))


def run(plan: Plan, device_name: str, variant: Variant = AS_IS, interval: float = 0.5,
        budget_s: float | None = None, kind: str = "compare") -> RunSummary:
    """Time one trial; its RunSummary (with ``error`` set when it could not run)."""
    device = frameworks.normalise_device(device_name)
    start = time.perf_counter()
    try:
        with device_scope(device_name):
            clone = build(plan, device_name, variant)
            spe = getattr(clone, "steps_per_execution", 1) or 1
            # the compiling execution and the slower steps after it; with many steps per execution the
            # first one holds them (and the timed call leaves its own first execution out as well)
            warm_steps = 1 + WARMUP_STEPS if spe == 1 else spe
            called = time.perf_counter()
            warm = fit_clone(clone, FitOptions(interval), **inputs(plan, variant, warm_steps))
            now = time.perf_counter()
            estimate = warm.step.mean if warm is not None and warm.step else None
            fastest = warm.step.min if warm is not None and warm.step else None
            # the timed call pays what the warm-up call cost outside its steps again (fit's set-up, the
            # data, the report): the budget keeps room for it
            outside = now - called - sum(e.steps_s for e in warm.epochs) if warm is not None else 0.0
            window = plan_window(plan, estimate or 0.0, now - start + max(0.0, outside), budget_s, spe, fastest)
            stop = WindowStop(plan.target_s, least_steps(plan.min_steps, spe), spe)
            # one execution more than the window: the first of a fit call is kept apart (a new iterator)
            report = fit_clone(clone, FitOptions(interval), stop, **inputs(plan, variant, window.steps + spe))
            if report is not None and getattr(clone, "layers", None):
                # what the copy computed in
                report = dataclasses.replace(report, compute_dtype=clone.layers[0].dtype_policy.compute_dtype)
    except Exception as exc:  # noqa: BLE001 - one line per trial; the user's own fit already ran
        return RunSummary(device, kind=kind, model=plan.name, variant=_label(variant), error=error_line(exc),
                          trial_s=time.perf_counter() - start)
    run_ = as_run(plan, device, variant, report, warm, kind)
    run_.trial_s = time.perf_counter() - start
    return run_


def run_shown(progress: Any, text: str, plan: Plan, device_name: str, variant: Variant = AS_IS,
              **kwargs: Any) -> RunSummary:
    """:func:`run`, named on the progress bar while it runs and counted on it after (``progress``: a bar
    with ``set_description`` and ``update``, or None)."""
    if progress is not None:
        progress.set_description(text)
    found = run(plan, device_name, variant, **kwargs)
    if progress is not None:
        progress.update(1)
    return found


MAX_ERROR = 240  # characters of a trial's error line: Keras' own can quote a whole layer config


def error_line(exc: BaseException) -> str:
    """A failed trial in one line: the first cause (Keras wraps a layer's own error in a message that
    quotes its whole config), cut to :data:`MAX_ERROR` characters."""
    root, seen = exc, {id(exc)}
    cause = root.__cause__ or root.__context__
    while cause is not None and id(cause) not in seen:
        root = cause
        seen.add(id(root))
        cause = root.__cause__ or root.__context__
    text = describe(root, first_line=True)
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 3] + "..."


def _label(variant: Variant) -> str | None:
    return None if variant is AS_IS else variant.label


def as_run(plan: Plan, device: str, variant: Variant, report: FitReport | None, warm: FitReport | None,
           kind: str) -> RunSummary:
    """The timed window as a run: mean step and its interval, samples/s, and the projected epoch."""
    if report is None or report.step is None:  # the window left no steady-state step (the table shows n/a)
        return RunSummary(device, kind=kind, model=plan.name, variant=_label(variant))
    run_ = RunSummary.from_report(report, kind=kind, device=device)
    run_.variant = _label(variant)
    run_.first_step_s = warm.first_step_s if warm is not None else report.first_step_s
    spe = report.steps_per_execution or 1
    run_.timed_steps = report.step.n * spe
    run_.timed_s = report.step.mean * run_.timed_steps
    run_.step_mean_interval_s = intervals.mean_interval(
        report.step_times or [], intervals.drift(plan.fit_steps or [], run_.timed_s))
    batch = report.batch_size
    run_.samples_per_s = batch / run_.step_mean_s if batch and run_.step_mean_s else None
    fixed, fixed_range = plan.fixed_s, plan.fixed_range
    if fixed is None:  # no finished epoch of the user's to measure it on: the trial's own
        own = fixed_costs(warm)
        fixed = sum(own) / len(own) if own else 0.0
        fixed_range = (fixed, fixed)
    # the user's epoch, in the variant's steps: the same samples in fewer, larger batches
    steps = math.ceil(plan.steps_per_epoch / variant.batch_factor) if plan.steps_per_epoch else None
    run_.steps_per_epoch = steps
    if steps and run_.step_mean_s is not None:
        run_.projected_epoch_s = steps * run_.step_mean_s + fixed
        if run_.step_mean_interval_s and fixed_range is not None:
            lo, hi = run_.step_mean_interval_s
            run_.projected_epoch_interval_s = (steps * lo + fixed_range[0], steps * hi + fixed_range[1])
    return run_


def needed_budget(wall_s: float | None, compile_s: float, budget_s: float | None, share: float) -> int | None:
    """The --budget (in % of an epoch, a multiple of 5) that would have held these trials, when compiling
    alone cost more than their budget (no window, however short, could then have kept within it);
    None when the trials kept within it, or compiling did not use it up."""
    if budget_s is None or wall_s is None or wall_s <= budget_s or compile_s <= budget_s or share <= 0:
        return None
    return budget_pct(wall_s, budget_s / share)


def budget_pct(seconds: float, epoch_s: float) -> int:
    """The --budget (in % of an epoch, rounded up to a multiple of 5) that ``seconds`` of trials need;
    over 100: more than --budget allows."""
    return 5 * math.ceil(100 * seconds / epoch_s / 5)


def extra_cost_s(variant: Variant, min_steps: int, step_s: float) -> float:
    """What a trial of ``variant`` costs beyond one of the model as it is, at the least: the steps its
    warm-up and fewest window need over the as-it-is trial's (steps_per_execution=32 warms up one
    execution of 32 and times at least 4 of them), at the batch it runs (x4: each step four times the
    work). Measured: a default --whatif that ran steps_per_execution=32 on its as-it-is estimate alone
    cost 14-20% of an epoch against its 10% (bench/compare.py --whatif, 2026-12-02)."""
    spe = int(variant.compile_changes.get("steps_per_execution", 1) or 1)
    warm = 1 + WARMUP_STEPS if spe == 1 else spe
    steps = warm + least_steps(min_steps, spe) + spe  # the timed call's own first execution too
    as_is = 1 + WARMUP_STEPS + min_steps + 1
    return max(0.0, steps * variant.batch_factor - as_is) * step_s


def least_cost_s(report: FitReport | None, min_steps: int = MIN_TIMED_STEPS) -> float | None:
    """What one trial costs at least, from the user's fit: its compiling first step, the warm-up steps
    and the fewest timed steps (a trial compiles as the fit did). None without a timed step."""
    if report is None or report.step is None or report.first_step_s is None:
        return None
    return report.first_step_s + (1 + WARMUP_STEPS + min_steps) * report.step.mean
