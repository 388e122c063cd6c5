"""``colab_magic.step()``: a training step marked by hand, for a loop that uses neither Keras' ``fit`` nor
``torch.optim`` (hand-written SGD, JAX with optax). The marks of one cell are one fit, ``loop = "marked"``:
a step is the time from one mark to the next, the first mark's step apart (its start is unknowable).
Outside a ``%%timed_fit`` cell a mark does nothing.
"""

from __future__ import annotations

import threading

from .observer import FitFacts, LoopPlan
from .recorder import CellFits, FitRecording

LOOP = "marked"
_ACTIVE: list[StepMarks] = []  # the cells being run, innermost last


def step() -> None:
    """Mark one training step (call it once per step, after the update)."""
    if _ACTIVE:
        _ACTIVE[-1].mark()


class StepMarks:
    """For a cell: the steps marked with :func:`step`, recorded in ``fits`` as one fit."""

    def __init__(self, fits: CellFits) -> None:
        self.fits = fits
        self.fit: FitRecording | None = None
        self.steps = 0
        self._lock = threading.Lock()

    def __enter__(self) -> StepMarks:
        _ACTIVE.append(self)
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        _ACTIVE.remove(self)
        if self.fit is not None:
            self.fit.epoch_ended(0)
            self.fit.fit_ended(error if isinstance(error, BaseException) else None)

    def mark(self) -> None:
        with self._lock:
            if self.fit is None:
                self.fit = self.fits.begin("marked steps", lambda: FitFacts(loop=LOOP, model="marked steps", backend="any",
                                                                              epochs_seen=False))
                self.fit.fit_started(LoopPlan())
                self.fit.epoch_started(0)
                self.fit.step_started(0)
            self.fit.step_ended(self.steps)
            self.steps += 1
