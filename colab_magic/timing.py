"""The Keras callback that timestamps every training step and epoch.

Step time is the interval between consecutive ``on_train_batch_end`` calls (for the first step of
an epoch: from its ``on_train_batch_begin``). Keras converts the logs to Python numbers before batch-end
hooks run, which waits for the step to finish on the device, so these intervals measure finished work
on every backend. That same wait is why this callback must not claim ``async_safe``: on JAX and torch an
async-dispatched hook would run later, on another thread, and its timestamps would mean nothing.

With ``steps_per_execution = N`` the hooks fire once per N steps; an interval is then divided by the
``end - begin + 1`` steps it covered.

Nothing here reads ``self.model`` in a batch hook: on JAX that copies the whole training state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras

from .stats import Reservoir


@dataclass
class EpochTiming:
    epoch: int
    start: float
    end: float | None = None
    train_end: float | None = None
    val_s: float = 0.0
    steps: int = 0
    steps_s: float = 0.0  # time inside steps; the rest of the epoch is its fixed cost
    step_median: float | None = None  # seconds per step, first execution of the fit excluded


class StepTimer(keras.callbacks.Callback):
    def __init__(self, on_epoch_end=None, clock=time.perf_counter):
        super().__init__()
        self.clock = clock
        self.on_epoch_boundary = on_epoch_end  # e.g. the sampler's energy mark
        self.fit_start: float | None = None
        self.fit_end: float | None = None
        self.first_step: float | None = None  # seconds of the fit's first execution (tracing, compiling)
        self.first_step_steps = 0
        self.steps = Reservoir()  # per-step seconds of every later execution
        self.executions = 0
        self.total_steps = 0
        self.epochs: list[EpochTiming] = []
        # Per-epoch steps are summarised when the epoch closes, so a long run keeps O(1) per epoch.
        self._epoch_steps = Reservoir(capacity=4096)
        self._last: float | None = None
        self._begin_step = 0
        self._val_start: float | None = None

    # Keras calls set_params with {"epochs", "steps", "verbose"}: kept as self.params.

    def on_train_begin(self, logs=None):
        self.fit_start = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(EpochTiming(epoch, self.clock()))
        self._epoch_steps = Reservoir(capacity=4096)
        self._last = None

    def on_train_batch_begin(self, batch, logs=None):
        self._begin_step = batch
        if self._last is None:
            self._last = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        steps = max(1, batch - self._begin_step + 1)
        elapsed = now - self._last
        self._last = now
        self.executions += 1
        self.total_steps += steps
        if self.first_step is None:
            self.first_step, self.first_step_steps = elapsed, steps
        else:
            per_step = elapsed / steps
            self.steps.add(per_step)
            self._epoch_steps.add(per_step)
        if self.epochs:
            self.epochs[-1].steps += steps
            self.epochs[-1].steps_s += elapsed
            self.epochs[-1].train_end = now

    def on_test_begin(self, logs=None):
        self._val_start = self.clock()

    def on_test_end(self, logs=None):
        if self._val_start is not None and self.epochs:
            self.epochs[-1].val_s += self.clock() - self._val_start
        self._val_start = None

    def on_epoch_end(self, epoch, logs=None):
        if self.epochs:
            self.epochs[-1].end = self.clock()
        self.close_epoch()
        if self.on_epoch_boundary is not None:
            self.on_epoch_boundary()

    def on_train_end(self, logs=None):
        self.fit_end = self.clock()

    def close_epoch(self) -> None:
        """Summarise the current epoch's steps (also called when a fit is interrupted mid-epoch)."""
        if self.epochs and self.epochs[-1].step_median is None:
            stats = self._epoch_steps.summary()
            self.epochs[-1].step_median = stats["median"] if stats else None
