"""``%%timed_fit --compare``: each model the cell trained, timed on each device by a trial
(:mod:`colab_magic.trials`) from the same start, with the speed-up over the CPU and its interval.

The user's model and its training are never touched: the comparison runs after the cell, on copies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import trials
from .defaults import DEFAULT_BUDGET, DEFAULT_INTERVAL, MIN_TIMED_STEPS
from .keras_loop import CapturedFit
from .report import FitReport
from .run_summary import Comparison, RunSummary


@dataclass(frozen=True)
class TrialOptions:
    """What --compare's and --whatif's trials may do."""

    steps: int = MIN_TIMED_STEPS  # the fewest steps a trial times
    devices: list[str] | None = None  # Keras device names for --compare; None: the CPU and the first GPU
    budget: float = DEFAULT_BUDGET  # share of the user's epoch the trials may cost, per flag
    interval: float = DEFAULT_INTERVAL  # the sampler's, while a trial runs


def devices_to_compare(requested: list[str] | None = None) -> list[str]:
    """Keras device names to compare: the CPU and the first GPU by default, or those requested."""
    seen = _keras_devices()
    cpus = [d for d in seen if d.startswith("cpu")] or ["cpu:0"]
    gpus = [d for d in seen if d.startswith(("gpu", "cuda"))]
    if not requested:
        return cpus[:1] + gpus[:1]
    if requested == ["all"]:
        return cpus[:1] + gpus
    missing = [d for d in requested if d.lower() not in seen]
    if missing:
        raise ValueError(f"{', '.join(missing)} not among the devices Keras sees: {', '.join(seen)}")
    return [d.lower() for d in requested]


def _keras_devices() -> list[str]:
    import keras

    try:
        return [str(d).lower() for d in keras.distribution.list_devices()]
    except AttributeError:  # the torch backend has no distribution library: ask torch itself
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu:0"] + [f"gpu:{i}" for i in range(count)]


def compare_fit(captured: CapturedFit, user_report: FitReport | None, device_names: list[str],
                options: TrialOptions, progress: Any = None) -> Comparison:
    """``progress``: a bar (``set_description``, ``update``) or None; one update per device."""
    start = time.perf_counter()
    result = Comparison(
        model=getattr(captured.model, "name", type(captured.model).__name__),
        steps=options.steps,
        steps_per_epoch=user_report.steps_per_epoch if user_report else None,
        batch_size=user_report.batch_size if user_report else None,
    )
    try:
        plan = trials.Plan.for_fit(captured, user_report, options.steps)
    except trials.TrialError as exc:
        result.skipped = str(exc)
        return result
    result.fixed_s = plan.fixed_s
    closed = len(user_report.closed_epochs) if user_report else 0
    if plan.fixed_range is not None and closed < trials.FEW_EPOCHS:
        low, high = plan.fixed_range
        result.notes.append(
            f"The time outside the steps was {low:.2f}-{high:.2f} s an epoch in your {closed} epoch"
            f"{'s' if closed != 1 else ''}; the interval spans that, but {closed} cannot show how often an epoch "
            "stalls at its start: a fit of 3 epochs or more can.")
    result.budget_s, result.budget_share = plan.budget_s(options.budget), options.budget
    if captured.weights is None:
        result.notes.append("The model had no weights before its fit: each device starts from its own random weights.")
    share = result.budget_s / len(device_names) if result.budget_s is not None else None
    with trials.stopped_by_ctrl_c(result):  # what finished is kept; the caller raises Ctrl-C again
        _run_devices(result, plan, device_names, share, options, progress)
    if result.skipped:
        return result
    result.add_speedups()
    result.wall_s = time.perf_counter() - start
    compiling = sum(r.first_step_s or 0.0 for r in result.runs if r.report is not None)
    result.needed_budget = trials.needed_budget(result.wall_s, compiling, result.budget_s, options.budget)
    return result


def _run_devices(result: Comparison, plan: trials.Plan, device_names: list[str], share: float | None,
                 options: TrialOptions, progress: Any) -> None:
    for name in device_names:
        run = trials.run_shown(progress, f"--compare: {result.model} on {name.upper()}", plan, name,
                               interval=options.interval, budget_s=share, kind="compare")
        if run.error is not None:
            _explain(run)
            if name == device_names[0] and _is_clone_problem(run.error):
                result.skipped = f"the model cannot be cloned ({run.error}); the comparison is skipped"
                return
        result.runs.append(run)


def _explain(run: RunSummary) -> None:
    import keras

    if keras.backend.backend() == "torch" and run.error and "No gradients" in run.error:
        run.error = (f"{run.error} (Keras' torch backend loses the gradients of a model built under "
                     "keras.device(); compare on the JAX or TensorFlow backend)")


def _is_clone_problem(error: str) -> bool:
    text = error.lower()
    return any(word in text for word in ("get_config", "from_config", "clone", "not serializable", "notimplementederror"))
