"""The step timer: timestamps every training step and epoch that a loop source reports.

Step time is the interval between consecutive step completions (for the first step of an epoch:
from its ``step_started``). It knows no framework: a loop source (:mod:`colab_magic.keras_loop`)
calls its :class:`~colab_magic.observer.FitObserver` methods.

From Keras, step ends come from an ``async_safe`` callback. On JAX and torch Keras then dispatches
batch-end hooks on a worker thread, where each one first waits for its own step's logs: the
timestamps are still step completions, and training keeps its asynchronous dispatch. Hooks may
therefore run on several threads at once, and arrive out of order when steps are shorter than a
thread's wake-up (tiny models on the CPU): state changes happen under a lock, and a step end that
arrives ahead of an earlier step's waits in a small buffer until the earlier one comes, so steps are
counted and timed in step order. Both steps had finished by the earliest of their timestamps, which
the earlier step takes. Keras waits for all pending hooks at the end of each epoch, so epochs never
overlap.

With ``steps_per_execution = N`` a step end arrives once per N steps; an interval is divided by the
steps it covered.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain

from .observer import FitObserver, LoopPlan
from .stats import Reservoir

# Step times kept per epoch for its median: an unbiased sample, so an epoch of any length costs the same.
EPOCH_STEPS_KEPT = 4096


@dataclass
class EpochTiming:
    epoch: int
    start: float
    end: float | None = None
    train_end: float | None = None
    val_s: float = 0.0
    steps: int = 0
    steps_s: float = 0.0  # time inside steps; the rest of the epoch is its fixed cost
    first_step_start: float | None = None  # when its first step began: before it, the iterator's set-up
    step_median: float | None = None  # seconds per step, first execution (and any warm-up steps) excluded


class StepTimer(FitObserver):
    def __init__(self, on_epoch_end: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter, steps_per_execution: int = 1,
                 warmup_steps: int = 0) -> None:
        # Steps after the first execution that stay out of the steady-state figures: a fresh model's
        # first few steps after compiling run slower (allocator, kernel caches), which a short timing
        # such as --compare's would otherwise count as steady state.
        self.warmup_steps = max(0, int(warmup_steps))
        self._warm = 0
        self.clock = clock
        self.plan = LoopPlan()
        self.steps_per_execution = max(1, int(steps_per_execution))
        self.on_epoch_boundary = on_epoch_end  # e.g. the sampler's energy mark
        self.fit_start: float | None = None
        self.fit_end: float | None = None
        self.first_step: float | None = None  # seconds of the fit's first execution (tracing, compiling)
        self.steps = Reservoir()  # per-step seconds of every later execution
        self.executions = 0
        self.total_steps = 0
        self.epochs: list[EpochTiming] = []
        self.closed = False  # set when the fit is over: a hook still pending on a worker is ignored
        self._lock = threading.Lock()
        self._new_epoch()
        self._val_start: float | None = None

    def _new_epoch(self) -> None:
        """The state of the epoch being timed."""
        # Per-epoch steps are summarised when the epoch closes, so a long run keeps O(1) per epoch.
        self._epoch_steps = Reservoir(capacity=EPOCH_STEPS_KEPT)
        self._epoch_first_begin: float | None = None
        self._last: float | None = None
        self._prev_end = -1  # index of the last step timed in this epoch
        self._early: list[tuple[int, float]] = []  # (step index, time) of hooks that came ahead of order

    def fit_started(self, plan: LoopPlan) -> None:
        self.plan = plan
        self.fit_start = self.clock()

    def epoch_started(self, epoch: int) -> None:
        with self._lock:
            self.epochs.append(EpochTiming(epoch, self.clock()))
            self._new_epoch()

    def step_started(self, step: int) -> None:
        # Runs on the loop's thread, before the step is dispatched: the epoch's first step starts here.
        if self._epoch_first_begin is None:
            self._epoch_first_begin = self.clock()
            if self.epochs:
                self.epochs[-1].first_step_start = self._epoch_first_begin

    def step_ended(self, step: int, at: float | None = None) -> None:
        batch = step
        now = self.clock() if at is None else at
        with self._lock:
            if self.closed or not self.epochs or self._epoch_first_begin is None:
                return
            if batch > self._prev_end + self.steps_per_execution:
                heapq.heappush(self._early, (batch, now))  # an earlier step's hook is still on its way
                return
            if self._early:
                now = min(now, min(t for _, t in self._early))
            self._record(batch, now)
            while self._early and self._early[0][0] <= self._prev_end + self.steps_per_execution:
                self._record(*heapq.heappop(self._early))

    def steps_ended(self, first: int, ends: Sequence[float]) -> None:
        """As ``step_ended`` for each of ``ends`` (consecutive steps from ``first``), in one call: steady
        steps in order are added as a batch (PyTorch's hot path tells its steps this way)."""
        with self._lock:
            if self._in_order(first, ends):
                self._record_all(first, ends)
                return
        super().steps_ended(first, ends)  # out of the ordinary: one at a time, as they would have come

    def _in_order(self, first: int, ends: Sequence[float]) -> bool:
        return (bool(ends) and not self.closed and bool(self.epochs) and self._epoch_first_begin is not None
                and not self._early and self.steps_per_execution == 1 and first == self._prev_end + 1)

    def _record_all(self, first: int, ends: Sequence[float]) -> None:
        i = 0
        while i < len(ends) and (self.first_step is None or self._warm < self.warmup_steps or self._last is None):
            self._record(first + i, ends[i])  # the fit's first, the warm-up, an epoch's first: as one by one
            i += 1
        rest = ends[i:]
        if not rest:
            return
        assert self._last is not None  # a step was recorded: the first, at least
        # each step starts where the one before ended (the starts run one past the ends: not strict)
        per_step = [end - start for start, end in zip(chain((self._last,), rest), rest, strict=False)]
        if min(per_step) < 0:  # not in order: _record's rule (a step starts at the latest end), one by one
            for j, at in enumerate(rest):
                self._record(first + i + j, at)
            return
        self._last = rest[-1]
        self._prev_end = first + len(ends) - 1
        self.executions += len(rest)
        self.total_steps += len(rest)
        epoch = self.epochs[-1]
        epoch.steps += len(rest)
        epoch.steps_s += sum(per_step)
        epoch.train_end = self._last
        self.steps.extend(per_step)
        self._epoch_steps.extend(per_step)

    def _record(self, batch: int, now: float) -> None:
        if batch <= self._prev_end:
            return  # the same step twice cannot happen in Keras; ignore rather than double count
        start = self._last if self._last is not None else self._epoch_first_begin
        assert start is not None  # step_ended records only once the epoch's first step began
        steps = batch - self._prev_end
        self._prev_end = batch
        elapsed = max(0.0, now - start)
        self._last = max(start, now)
        self.executions += 1
        self.total_steps += steps
        epoch = self.epochs[-1]
        epoch.steps += steps
        epoch.steps_s += elapsed
        epoch.train_end = self._last
        if self.first_step is None:
            self.first_step = elapsed
        elif self._warm < self.warmup_steps:
            self._warm += steps
        else:
            per_step = elapsed / steps
            self.steps.add(per_step)
            self._epoch_steps.add(per_step)

    def validation_started(self) -> None:
        self._val_start = self.clock()

    def validation_ended(self) -> None:
        if self._val_start is not None and self.epochs:
            self.epochs[-1].val_s += self.clock() - self._val_start
        self._val_start = None

    def epoch_ended(self, epoch: int) -> None:
        if self.epochs:
            self.epochs[-1].end = self.clock()
        self.close_epoch()
        if self.on_epoch_boundary is not None:
            self.on_epoch_boundary()

    def fit_ended(self, error: BaseException | None = None) -> None:
        if self.fit_end is None:
            self.fit_end = self.clock()

    def close_epoch(self) -> None:
        """Summarise the current epoch's steps (also called when a fit is interrupted mid-epoch)."""
        with self._lock:
            while self._early:  # a fit stopped early (or an odd step count): time what did arrive
                self._record(*heapq.heappop(self._early))
            if self.epochs and self.epochs[-1].step_median is None:
                stats = self._epoch_steps.step_stats()
                self.epochs[-1].step_median = stats.median if stats else None

    def close(self) -> None:
        """The fit is over: summarise, and ignore hooks that a worker thread may still deliver."""
        self.close_epoch()
        with self._lock:
            self.closed = True
