"""Keras' hooks, told to a :class:`~colab_magic.observer.FitObserver`: the callback each timed fit gets.

Imported only once a fit is called (Keras is imported then), so that a cell that never uses Keras never
imports it.

The callback is ``async_safe``: overriding ``on_train_batch_end`` without it switches off JAX's and
torch's asynchronous dispatch, which made a small CNN on an H200 35% slower (bench/results). Keras
converts the logs to Python numbers before batch-end hooks run, and that conversion waits for the step
to finish on the device, so a batch-end hook marks finished work on every backend. Nothing here reads
``self.model`` in a batch hook: on JAX that copies the training state.
"""

from __future__ import annotations

import time
from typing import Any

import keras

from .callback_clock import CallbackClock
from .observer import FitObserver, LoopPlan


class ObserverCallback(keras.callbacks.Callback):
    """Keras' hooks, told to a :class:`FitObserver` (the seam every loop source drives)."""

    async_safe = True

    def __init__(self, observer: FitObserver, model: Any, clock: CallbackClock | None = None) -> None:
        super().__init__()
        self.observer = observer
        self._model_ref = model  # not self.model: on JAX reading that in a batch hook copies the state
        self.clock = clock  # where our own hooks' time goes (apart from the user's callbacks')

    def on_train_begin(self, logs: dict | None = None) -> None:
        params = self.params or {}
        # Keras draws its bar unless verbose is 0 (silent) or 2 (a line per epoch)
        self.observer.fit_started(LoopPlan(params.get("epochs"), params.get("steps"), params.get("verbose") not in (0, 2)))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.observer.epoch_started(epoch)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        self.observer.step_started(batch)
        if self.clock is not None:
            self.clock.own_s += time.perf_counter() - start

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        self.observer.step_ended(batch)
        if self.observer.stop_requested():
            self._model_ref.stop_training = True
        if self.clock is not None:
            self.clock.own_s += time.perf_counter() - start

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.observer.validation_started()

    def on_test_end(self, logs: dict | None = None) -> None:
        self.observer.validation_ended()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.observer.epoch_ended(epoch)
