"""``%%timed_fit --compare``: each model the cell trained, timed for a few steps on each device.

Each device gets its own copy of the model, built inside ``keras.device(...)`` (a model built on the
GPU and reused under a CPU scope can fail on TensorFlow), with the weights the user's model had before
its fit and a fresh optimizer from the same compile config. The user's model and its training are
never touched: the comparison runs after the cell, on the clones.

A projected epoch is ``steps_per_epoch x mean step + the epoch's fixed cost``:
- the mean, not the median, because an epoch is the sum of its steps, and step times are skewed (a CPU
  step's median sits 3-5% under its mean; on an H200 with JAX's async dispatch, 21%). The first
  execution (compiling) and a few warm-up steps after it are left out.
- the fixed cost (time in an epoch outside its steps and validation) is the user's fit's, measured:
  it is host-side work on the user's full data (iterator set-up, shuffling, callbacks, tearing down
  the previous epoch's iterator) that a few steps on a slice of the data cannot show. With a
  50,000-image array, TensorFlow spends 3-7 s of some epochs there (bench/results/README.md).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass

from . import frameworks
from .fit_hook import CapturedFit, time_fit_call
from .parts import describe
from .run_summary import Comparison, RunSummary


@dataclass
class CompareOptions:
    steps: int  # per device, the first (compiling) one included
    devices: list[str] | None = None  # Keras device names; None: the CPU and the first GPU


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


def _device_scope(name: str):
    """``keras.device(name)``, except on torch for the device Keras uses anyway: there, a model built
    under keras.device() trains with no gradients (seen with Keras 3.15.1, torch 2.13 on the CPU)."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        default = "gpu" if torch.cuda.is_available() else "cpu"
        if name.split(":")[0] == default and name.endswith(":0"):
            return contextlib.nullcontext()
    return keras.device(name)


def _keras_devices() -> list[str]:
    import keras

    try:
        return [str(d).lower() for d in keras.distribution.list_devices()]
    except AttributeError:  # the torch backend has no distribution library: ask torch itself
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu:0"] + [f"gpu:{i}" for i in range(count)]


WARMUP_STEPS = 5  # after compiling, a fresh clone's first 5 steps ran 18% slower on average (bench/results/README.md)


def steps_for(steps: int, user_report) -> int:
    """The comparison's steps per device: no more than the user's epoch holds."""
    if user_report and user_report.steps_per_epoch:
        return max(2, min(steps, user_report.steps_per_epoch))
    return steps


def warmup_for(steps: int) -> int:
    """Warm-up steps left out of a comparison of ``steps``: at most a third of those after the first."""
    return min(WARMUP_STEPS, (steps - 1) // 3)


def fixed_cost_s(report) -> float | None:
    """The mean time an epoch of ``report`` spent outside its steps and validation.

    Epochs after the first when there are some: Keras sets up the first epoch's iterator before the
    epoch starts, and each later epoch also waits for the previous iterator to shut down.
    """
    closed = [e for e in (report.closed_epochs if report else []) if e.steps]
    later = closed[1:] or closed
    if not later:
        return None
    return sum(e.outside_steps_s for e in later) / len(later)


def compare_fit(captured: CapturedFit, user_report, device_names: list[str], steps: int, interval: float, progress=None) -> Comparison:
    """``progress``: a bar (``set_description``, ``update``) or None."""
    start = time.perf_counter()
    result = _compare_fit(captured, user_report, device_names, steps, interval, progress)
    result.wall_s = time.perf_counter() - start
    return result


def _compare_fit(captured, user_report, device_names, steps, interval, progress) -> Comparison:
    import keras

    model = captured.model
    steps = steps_for(steps, user_report)
    result = Comparison(
        model=getattr(model, "name", type(model).__name__),
        steps=steps,
        steps_per_epoch=user_report.steps_per_epoch if user_report else None,
        batch_size=user_report.batch_size if user_report else None,
        fixed_s=fixed_cost_s(user_report),
    )
    config = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if not config:
        result.skipped = "the model was not compiled with compile(), so it cannot be compiled again elsewhere"
        return result
    if captured.weights is None:
        result.notes.append("The model had no weights before its fit: each device starts from its own random weights.")
    for name in device_names:
        device = frameworks.normalise_device(name)
        try:
            with _device_scope(name):
                clone = keras.models.clone_model(model)
                if captured.weights is not None:
                    clone.set_weights(captured.weights)
                clone.compile_from_config(config)
                if progress is not None:
                    progress.set_description(f"--compare: {result.model} on {device}")
                report = _time_clone(clone, captured.arguments, steps, interval, progress.update if progress else None)
            run = _summarise(device, report, result.steps_per_epoch, result.fixed_s)
        except Exception as exc:  # noqa: BLE001 - one line per device; the user's own fit already ran
            run = RunSummary(device, kind="compare", model=result.model, error=describe(exc, first_line=True))
            if keras.backend.backend() == "torch" and "No gradients" in run.error:
                run.error = (f"{run.error} (Keras' torch backend loses the gradients of a model built under "
                             "keras.device(); compare on the JAX or TensorFlow backend)")
            if name == device_names[0] and _is_clone_problem(exc):
                result.skipped = f"the model cannot be cloned ({run.error}); the comparison is skipped"
                return result
        result.runs.append(run)
    result.add_speedups()
    return result


def _time_clone(clone, arguments: dict, steps: int, interval: float, progress):
    kwargs = {
        k: v
        for k, v in arguments.items()
        if k in ("x", "y", "batch_size", "sample_weight", "class_weight", "shuffle")
    }
    # Only the samples the steps will use: converting a whole 50,000-image array again for 30 steps
    # cost more than the steps themselves (bench/compare.py).
    needed = steps * (kwargs.get("batch_size") or 32)
    for key in ("x", "y", "sample_weight"):
        if key in kwargs:
            kwargs[key] = _head(kwargs[key], needed)
    kwargs.update(epochs=1, steps_per_epoch=steps, verbose=0, callbacks=None)
    return fit_clone(clone, interval, progress, warmup_for(steps), **kwargs)


def fit_clone(clone, interval: float, progress=None, warmup: int = 0, **kwargs):
    """``clone.fit(**kwargs)`` timed and sampled: its FitReport, or None if none could be built."""
    bound = inspect.signature(type(clone).fit).bind(clone, **kwargs)
    reports = []
    time_fit_call(type(clone).fit, bound, interval, 1, lambda report, problem: reports.append(report), on_step=progress,
                  warmup_steps=warmup)
    return reports[0] if reports else None


def _summarise(device: str, report, steps_per_epoch: int | None, fixed_s: float | None) -> RunSummary:
    """The timed clone as a run: its epoch projected from the mean step plus the epoch's fixed cost."""
    if report is None:  # the timed steps left no report (the table shows n/a)
        return RunSummary(device, kind="compare")
    run = RunSummary.from_report(report, kind="compare", device=device)
    if run.step_mean_s is None:
        return run
    run.samples_per_s = report.batch_size / run.step_mean_s if report.batch_size else None
    if fixed_s is None:  # no finished epoch of the user's to measure it on: the clone's own
        fixed_s = fixed_cost_s(report) or 0.0
    run.steps_per_epoch = steps_per_epoch  # the user's epoch, which the clone's steps are projected to
    if steps_per_epoch:
        run.projected_epoch_s = steps_per_epoch * run.step_mean_s + fixed_s
    return run


def _head(data, n: int):
    """The first ``n`` samples of an array (or a list/tuple/dict of arrays); anything else as is."""
    if hasattr(data, "shape") and hasattr(data, "__getitem__") and len(data.shape) and data.shape[0] > n:
        return data[:n]
    if isinstance(data, (list, tuple)) and all(hasattr(d, "shape") for d in data):
        return type(data)(_head(d, n) for d in data)
    if isinstance(data, dict) and all(hasattr(d, "shape") for d in data.values()):
        return {k: _head(v, n) for k, v in data.items()}
    return data


def _is_clone_problem(exc: Exception) -> bool:
    text = describe(exc).lower()
    return any(word in text for word in ("get_config", "from_config", "clone", "not serializable", "notimplementederror"))

