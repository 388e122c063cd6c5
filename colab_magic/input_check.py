"""The input check: how much of a training step waits for data.

The same model trained on one batch held in memory gives the step without input cost; the difference
from the user's step is the wait (TensorFlow Profiler's "input time", measured from outside the
pipeline). For ``tf.data`` inputs only: arrays are already in memory.

Means, not medians: the wait is a share of the fit's time, and a pipeline that stalls every tenth
batch (a shuffle buffer refilling, a file opening) costs time that a median step never shows. The
held-batch timing is short and runs after the fit, so the share comes with an interval (as the trials'
speed-ups do): the verdicts go by its low end, and a difference the noise can explain is not called
input-bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from . import intervals
from .keras_loop import CapturedFit
from .parts import InputWait
from .recorder import FitOptions
from .report import FitReport
from .trials import TARGET_TIMED_S, WARMUP_STEPS, WindowStop, fit_clone, least_steps

INPUT_CHECK_STEPS = 20  # the fewest steps the held-batch copy times
# the most it may time, in the user's own steps' seconds: a stop ends it once it holds TARGET_TIMED_S,
# and a step without its input wait can be many times faster than the user's
MAX_CHECK_S = 10 * TARGET_TIMED_S
FIT_BLOCKS = 10  # the user's steps in this many blocks: how steady the fit itself ran


def input_wait(captured: CapturedFit, user_report: FitReport | None, interval: float, steps: int = INPUT_CHECK_STEPS) -> InputWait | None:
    import keras

    x = captured.arguments.get("x")
    model = captured.model
    config = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if not hasattr(x, "element_spec") or not config or user_report is None or not user_report.step:
        return None
    start = time.perf_counter()
    clone = keras.models.clone_model(model)
    clone.compile_from_config(config)
    held = x.take(1).cache().repeat()  # type: ignore[union-attr]  # x has element_spec: a tf.data.Dataset
    step = user_report.step.mean
    spe = getattr(clone, "steps_per_execution", 1) or 1
    least = least_steps(steps, spe)
    # the first (compiling) step and the slower ones after it are kept apart, as in a trial
    planned = 1 + WARMUP_STEPS + max(least, math.ceil(MAX_CHECK_S / step))
    if spe > 1:  # whole executions, the compiling one and one of warm-up besides
        planned = spe * (2 + math.ceil(planned / spe))
    report = fit_clone(clone, FitOptions(interval, WARMUP_STEPS), WindowStop(TARGET_TIMED_S, least, spe), x=held,
                       epochs=1, steps_per_epoch=planned, verbose=0, shuffle=False)
    if report is None or not report.step:
        return None
    compute = report.step.mean
    return InputWait(
        step_s=step,
        compute_step_s=compute,
        wait_share=max(0.0, 1.0 - compute / step),
        check_s=time.perf_counter() - start,
        steps=report.step.n * spe,
        wait_share_interval=share_interval(user_report.step_times, step, report.step_times, compute),
    )


def share_interval(fit_steps: Sequence[float] | None, step: float, check_steps: Sequence[float] | None,
                   compute: float) -> tuple[float, float] | None:
    """A 95% interval for the share of a step that waits, ``1 - compute / step``: the held-batch
    timing projected onto the fit (its scatter and the drift of the fit's own windows), against the
    fit's mean as steady as its steps ran. None when either has too few steps."""
    if not fit_steps or not check_steps:
        return None
    timed_s = math.fsum(check_steps)
    compute_interval = intervals.mean_interval(check_steps, intervals.drift(fit_steps, timed_s))
    step_interval = intervals.mean_interval(fit_steps, blocks=FIT_BLOCKS, predict=False)
    ratio = intervals.ratio_interval(compute, compute_interval, step, step_interval)
    if ratio is None:
        return None
    return max(0.0, 1.0 - ratio[1]), max(0.0, 1.0 - ratio[0])
