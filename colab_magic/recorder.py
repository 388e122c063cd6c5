"""Recording fits, whatever loop drives them: a :class:`FitRecording` per fit (a step timer and a
sampler behind the :class:`~colab_magic.observer.FitObserver` seam), and :class:`CellFits`, a cell's
fits numbered as they start, also in other threads.

A loop source asks :meth:`CellFits.begin` for a recording when it sees a fit, drives it, and ends it
with ``fit_ended``: the recording then builds the fit's report from the timer, the sampler and the
source's :class:`~colab_magic.observer.FitFacts`. Fits still running when the cell ends are reported
as such and their samplers stopped, so nothing outlives the cell.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import cluster
from .defaults import DEFAULT_INTERVAL
from .errors import describe
from .fit_report import build_report
from .observer import CellObserver, FitFacts, FitObserver, LoopPlan
from .report import FitReport
from .sampler import Sampler
from .timing import StepTimer


@dataclass(frozen=True)
class FitOptions:
    """How each fit of a cell is recorded."""

    interval: float = DEFAULT_INTERVAL  # seconds between the sampler's readings
    warmup_steps: int = 0  # steps after the first execution kept out of the steady state (a trial's)


class FitRecording(FitObserver):
    """One fit being timed and sampled: what a loop source drives."""

    def __init__(self, cell: CellFits, index: int, model: object, facts: Callable[[], FitFacts]) -> None:
        """``facts()``: the source's facts about the model, read when the fit ends."""
        self.cell = cell
        self.index = index
        self.model = model  # the user's model (the live view names it)
        self.facts = facts
        self.sampler = Sampler(cell.options.interval)
        self.timer = StepTimer(on_epoch_end=self.sampler.mark, warmup_steps=cell.options.warmup_steps)
        self.backup: Any = None  # Keras' BackupAndRestore that --backup added
        self.callback_clock: Any = None  # the user's callbacks' time (colab_magic.callback_clock), Keras'
        self.warned = False  # the runtime-left warning was given for this fit
        self.problems: list[str] = []  # failures of our own hooks during the fit
        self.cluster: dict | None = None  # a multi-process run: this process's place in it
        self.done = False
        self.abandoned = False
        self._lock = threading.Lock()
        try:
            self.cluster = cluster.current()
        except Exception as exc:  # noqa: BLE001 - the fit runs; its record just cannot be grouped
            self.problems.append(f"This process's place in the cluster could not be read: {describe(exc)}")

    # The observer: each event to the timer first, then to the cell's observer.

    def fit_started(self, plan: LoopPlan) -> None:
        self.timer.fit_started(plan)

    def epoch_started(self, epoch: int) -> None:
        self.timer.epoch_started(epoch)

    def step_started(self, step: int) -> None:
        self.timer.step_started(step)

    def step_ended(self, step: int, at: float | None = None) -> None:
        self.timer.step_ended(step, at)

    def steps_ended(self, first: int, ends: Sequence[float]) -> None:
        self.timer.steps_ended(first, ends)

    def validation_started(self) -> None:
        self.timer.validation_started()

    def validation_ended(self) -> None:
        self.timer.validation_ended()

    def epoch_ended(self, epoch: int) -> None:
        self.timer.epoch_ended(epoch)
        try:
            self.cell.observer.epoch_ended(self)
        except Exception as exc:  # noqa: BLE001 - runs inside the user's fit: it must never stop it
            self.problems.append(f"The epoch-end check failed: {describe(exc)}")

    def stop_requested(self) -> bool:
        return self.cell.observer.stop_requested(self)

    def fit_ended(self, error: BaseException | None = None) -> None:
        self.timer.fit_ended(error)
        with self._lock:
            self.done = True
            wanted = not self.abandoned
        self.sampler.stop()
        if wanted:
            self._deliver(None if error is None else describe(error))

    def abandon(self, reason: str) -> None:
        """Stop the sampler and deliver what was measured so far, marked incomplete; what the fit
        delivers when it does end is then ignored."""
        with self._lock:
            if self.done or self.abandoned:  # delivered once
                return
            self.abandoned = True
        self.sampler.stop()
        self._deliver(reason)

    def _deliver(self, error: str | None) -> None:
        # Runs in a finally: it must not raise, or it would hide the user's own exception.
        try:
            self.timer.close()
            facts = self.facts()
            notes = [*facts.notes, *self.problems]
            facts = dataclasses.replace(facts, notes=notes)
            report = build_report(self.index, self.timer, self.sampler, facts, error=error, cluster=self.cluster)
        except Exception as exc:  # noqa: BLE001
            self.cell.delivered(self, None, f"could not build the report: {describe(exc)}")
        else:
            self.cell.delivered(self, report, None)


_ACTIVE: list[CellFits] = []  # the cells being run, innermost last


def active() -> CellFits | None:
    """The fits of the ``%%timed_fit`` cell running now, for a loop source that finds its fits
    through global hooks (None outside such a cell)."""
    return _ACTIVE[-1] if _ACTIVE else None


class CellFits:
    """The fits of one cell (or of one trial), numbered as they start. As a context manager: the
    cell's, found by :func:`active` while it runs, and closed when it ends."""

    def __init__(self, options: FitOptions | None = None, observer: CellObserver | None = None) -> None:
        self.options = options or FitOptions()
        self.observer = observer or CellObserver()
        self.reports: list[FitReport] = []
        self.errors: list[str] = []  # failures of our own bookkeeping, never the user's
        self.delivered_to: dict[int, FitReport | None] = {}  # a fit's index -> its report (None: none built)
        self._lock = threading.Lock()
        self._started = 0
        self._running: list[FitRecording] = []

    def __enter__(self) -> CellFits:
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)
        self.close()

    def begin(self, model: object, facts: Callable[[], FitFacts]) -> FitRecording:
        """A loop source saw a fit: its recording, sampling from now on."""
        with self._lock:
            self._started += 1
            fit = FitRecording(self, self._started, model, facts)
            self._running.append(fit)
        fit.sampler.start()
        try:
            self.observer.fit_began(fit)
        except Exception as exc:  # noqa: BLE001 - the view is ours: the fit goes on without it
            with self._lock:
                self.errors.append(f"--live could not be shown: {describe(exc)}")
        return fit

    def delivered(self, fit: FitRecording, report: FitReport | None, problem: str | None) -> None:
        with self._lock:
            self.delivered_to[fit.index] = report
            if report is not None:
                self.reports.append(report)
            if problem:
                self.errors.append(problem)

    def close(self) -> None:
        """The cell is over: fits still running (in other threads) are reported as they stand."""
        with self._lock:
            unfinished = [fit for fit in self._running if not fit.done]
        for fit in unfinished:
            fit.abandon("still running in another thread when the cell ended")
        with self._lock:
            self.reports.sort(key=lambda report: report.index)
