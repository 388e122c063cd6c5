"""The seam between a training loop and everything that measures it.

A loop source (today Keras' ``fit``, through a callback; tomorrow PyTorch's optimizer hooks or a
``colab_magic.step()`` mark) tells a :class:`FitObserver` what happens, in the spirit of Keras'
``Callback``: a fit starts, an epoch starts, a step starts and ends, validation runs, an epoch ends,
the fit ends; and it asks whether a stop is requested. What the source knows of the model comes as
one :class:`FitFacts` when the fit ends. Timing, sampling, the report, the verdicts, the history and
the views know nothing of the source beyond ``FitFacts.loop``.

:class:`CellObserver` is the other side: what the front end (the live view,
Colab's runtime check, a trial's timed window) is told about each fit while a cell runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .parts import InputWait, ModelSignature


@dataclass(frozen=True)
class LoopPlan:
    """What a loop says of itself as training begins (None where it does not know)."""

    epochs: int | None = None
    steps_per_epoch: int | None = None
    draws_progress: bool = False  # the loop prints its own progress bar (Keras' verbose=1)


@dataclass(frozen=True)
class FitFacts:
    """What a loop source knows of the model it trained, read when the fit ends."""

    loop: str  # "keras", or another source's name
    model: str
    backend: str
    device: str | None = None  # where the weights lived, e.g. "GPU:0"
    devices: list[str] = field(default_factory=list)
    batch_size: int | None = None
    batch_note: str | None = None  # why batch_size is None
    steps_per_execution: int = 1
    framework_memory_peak: int | None = None  # bytes
    signature: ModelSignature | None = None
    resumed_from_epoch: int | None = None
    backup_dir: str | None = None
    notes: list[str] = field(default_factory=list)  # the source's own notes on this fit
    # the user's callbacks: seconds by class name and epoch index (-1: outside epochs); and what the
    # source's own hooks cost (None: not measured)
    callback_seconds: dict = field(default_factory=dict)
    own_hooks_s: float | None = None
    input_kind: str | None = None  # "numpy", "tf.data", "generator", "PyDataset"...: what fed the fit
    input_wait: InputWait | None = None  # the input wait, where the source measures it directly (torch)
    flops_per_step: float | None = None  # where the source counts them itself (torch's FlopCounterMode)
    flops_method: str | None = None
    # where the source knows them (torch): the dtype matrix products run in (autocast's, else the
    # weights'), whether float32 ones may run as TF32, and the caching allocator's peak reservation
    compute_dtype: str | None = None
    tf32: bool | None = None
    framework_memory_reserved: int | None = None  # bytes
    skipped_steps: int = 0  # steps whose update was skipped (torch's GradScaler)
    # False where the loop marks no epochs (colab_magic.step(); a PyTorch loop that no DataLoader fed): its
    # steps then make one span, which is no epoch
    epochs_seen: bool = True


class FitObserver:
    """What a loop source drives. Every method is a no-op here; steps are numbered from 0 within
    their epoch, and ``step_ended(n)`` after a gap of several steps means the hook covered them all
    (Keras' ``steps_per_execution``). Methods may be called from several threads."""

    def fit_started(self, plan: LoopPlan) -> None:
        """Training begins (after the loop's own set-up)."""

    def epoch_started(self, epoch: int) -> None:
        """``epoch`` counts from 0."""

    def step_started(self, step: int) -> None:
        """Before a step is dispatched (only the first of an epoch is needed)."""

    def step_ended(self, step: int, at: float | None = None) -> None:
        """The step (and every step up to it) has finished; ``at``: when, on ``time.perf_counter``'s clock,
        for a source that tells its steps in batches (None: now)."""

    def steps_ended(self, first: int, ends: Sequence[float]) -> None:
        """Steps ``first``, ``first + 1``, ... ended at ``ends`` (``time.perf_counter``'s clock): a source
        that tells its steps in batches (PyTorch's hot path) says them in one call."""
        for i, at in enumerate(ends):
            self.step_ended(first + i, at)

    def validation_started(self) -> None:
        pass

    def validation_ended(self) -> None:
        pass

    def epoch_ended(self, epoch: int) -> None:
        pass

    def fit_ended(self, error: BaseException | None = None) -> None:
        """The fit is over, by finishing or by ``error`` (the user's exception, Ctrl-C included)."""

    def stop_requested(self) -> bool:
        """Asked after each step: True ends the fit there (a trial's timed window)."""
        return False


class RunningFit(Protocol):
    """A fit being recorded (:class:`colab_magic.recorder.FitRecording`), as a cell's observer sees it."""

    index: int
    model: Any  # the user's model
    timer: Any  # its colab_magic.timing.StepTimer
    sampler: Any  # its colab_magic.sampler.Sampler
    backup: Any  # Keras' BackupAndRestore that --backup added, or None
    warned: bool  # the runtime-left warning was given for it


class CellObserver:
    """What the front end is told while a cell runs (the live view, Colab's runtime check, a trial's
    timed window). Every method is a no-op here."""

    def fit_began(self, fit: RunningFit) -> None:
        """A fit was seen (on its own thread, before its first step)."""

    def epoch_ended(self, fit: RunningFit) -> None:
        pass

    def stop_requested(self, fit: RunningFit) -> bool:
        return False

    def say(self, text: str) -> None:
        """A line to show now, while the cell still runs."""

    def progress(self, total: int) -> Any:
        """A bar for ``total`` trials (``set_description``, ``update``, ``close``), or None."""
        return None

    def cell_ended(self) -> None:
        """The cell's own code is done (the trials may follow)."""
