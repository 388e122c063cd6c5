"""The input check: how much of a training step waits for data.

The same model trained on one batch held in memory gives the step without input cost; the difference
from the user's step is the wait (TensorFlow Profiler's "input time", measured from outside the
pipeline). For ``tf.data`` inputs only: arrays are already in memory.
"""

from __future__ import annotations

import time

from .trials import fit_clone
from .fit_hook import CapturedFit
from .parts import InputWait

INPUT_CHECK_STEPS = 20


def input_wait(captured: CapturedFit, user_report, interval: float, steps: int = INPUT_CHECK_STEPS) -> InputWait | None:
    import keras

    x = captured.arguments.get("x")
    model = captured.model
    config = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if not hasattr(x, "element_spec") or not config or user_report is None or not user_report.step:
        return None
    start = time.perf_counter()
    clone = keras.models.clone_model(model)
    clone.compile_from_config(config)
    held = x.take(1).cache().repeat()
    report = fit_clone(clone, interval, x=held, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    if report is None or not report.step:
        return None
    compute = report.step.median
    step = user_report.step.median
    return InputWait(
        step_s=step,
        compute_step_s=compute,
        wait_share=max(0.0, (step - compute) / step),
        check_s=time.perf_counter() - start,
        steps=steps,
    )
