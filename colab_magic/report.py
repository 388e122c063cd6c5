"""What a timed cell measured, as plain data: a :class:`FitReport` per fit, a :class:`TimedFitResult`
per cell. Shaped like IPython's ``TimeitResult``: typed fields (see :mod:`colab_magic.parts`),
``to_dict()`` (JSON-serialisable, the stable public format), and rich reprs drawn by
:mod:`colab_magic.fit_view`. :mod:`colab_magic.fit_report` builds the reports; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from . import brief_view, fit_view, plot
from .headline import fit_headline, no_gpu_advice
from .parts import (
    CallbackTime,
    Epoch,
    Finding,
    GpuSummary,
    HostSummary,
    InputWait,
    ModelSignature,
    SamplerFigures,
    StepStats,
)
from .run_summary import Comparison, WhatIf
from .tables import Rendered, Table

NO_STEP_SEEN = ("No training step was seen in this cell: a Keras model.fit, a torch.optim optimizer's step(), or "
                "colab_magic.step() in your own loop marks one.")


@dataclass(frozen=True)
class FitReport:
    """One fit, measured: assembled once (colab_magic.fit_report, then colab_magic.cell), not changed after."""

    index: int  # 1 for the cell's first fit
    model: str
    backend: str
    device: str | None  # where the model's weights lived, e.g. "GPU:0"
    batch_size: int | None
    epochs_planned: int | None
    steps_per_epoch: int | None
    steps_per_execution: int
    complete: bool
    error: str | None  # what stopped an incomplete fit
    wall_s: float | None
    first_step_s: float | None  # the fit's first execution: tracing and compilation, kept apart
    step: StepStats | None  # seconds per step of the steady state
    total_steps: int
    samples_per_s: float | None
    epochs: list[Epoch]
    host: HostSummary
    gpus: list[GpuSummary]
    gpu_note: str | None  # why there are no GPU columns
    framework_memory_peak: int | None  # bytes, from the framework (TensorFlow get_memory_info)
    sampler: SamplerFigures
    notes: list[str] = field(default_factory=list)
    timeline: dict = field(default_factory=dict)  # series as [[seconds since start, value], ...]
    signature: ModelSignature | None = None  # the model's identity in the history
    findings: list[Finding] = field(default_factory=list)  # verdicts, most important first
    input_wait: InputWait | None = None  # the input check, where it ran
    batch_note: str | None = None  # why batch_size is None, where it is
    # What the steps computed: FLOPs per training step (3 x forward by convention, or XLA's count),
    # FLOP/s from the mean step, and the model FLOPs utilisation against the GPU's datasheet peak
    flops_per_step: float | None = None
    flops_method: str | None = None
    achieved_flops_per_s: float | None = None
    peak_flops_per_s: float | None = None
    mfu: float | None = None  # 0-1; None where the peak is unknown (and on the CPU)
    compute_dtype: str | None = None  # "float32", "float16", "bfloat16"
    peak_basis: str | None = None  # which peak, and why
    flops_note: str | None = None
    # --backup: Keras' BackupAndRestore folder, and the epochs a backup had already done when this fit
    # started from it (None: a fresh start)
    backup_dir: str | None = None
    resumed_from_epoch: int | None = None
    # every device holding the model's weights: one per replica under DataParallel or MirroredStrategy
    devices: list[str] = field(default_factory=list)
    # several processes (keras.distribution on JAX): task_index, workers, the run id they share, local devices
    cluster: dict | None = None
    # --plot in a notebook: the timeline as a PNG, shown after the verdicts (not in to_dict)
    timeline_png: bytes | None = field(default=None, repr=False)
    # the steady-state seconds per step in the order they ran (while the fit had fewer steps than the
    # timer keeps): how much short windows of this machine stray from the mean (colab_magic.intervals)
    step_times: Sequence[float] | None = field(default=None, repr=False)  # an array("d")
    loop: str = "keras"  # the loop source that drove the fit (colab_magic.observer)
    # the user's callbacks, slowest first, and what the product's own hooks cost (None: not measured)
    callbacks: list[CallbackTime] = field(default_factory=list)
    own_hooks_s: float | None = None
    input_kind: str | None = None  # what fed the fit: "numpy", "tf.data", "generator"...
    # PyTorch's caching allocator: the most it reserved (framework_memory_peak: the most tensors used)
    framework_memory_reserved: int | None = None
    tf32: bool | None = None  # float32 matrix products allowed to run as TF32 (None: not known, Keras)
    skipped_steps: int = 0  # optimizer steps a GradScaler skipped (inf or NaN gradients): counted as steps
    # False: the loop marked no epochs (colab_magic.step(), a PyTorch loop no DataLoader fed): ``epochs``
    # holds one span of all the steps, and there is no s/epoch
    epochs_seen: bool = True

    @property
    def device_gpu(self) -> GpuSummary | None:
        """The GPU the model trained on, if it trained on one."""
        return next((g for g in self.gpus if self.device == f"GPU:{g.index}"), None)

    @property
    def failed(self) -> bool:
        """The fit raised an exception of its own (not Ctrl-C, not a fit abandoned at the cell's end)."""
        error = self.error or ""
        name = error.split(":", 1)[0]
        return not self.complete and name.isidentifier() and name != "KeyboardInterrupt"

    @property
    def failed_at(self) -> str:
        """Where a fit stopped: "in epoch 2 at step 15", or "at the end of epoch 2"."""
        if not self.epochs:
            return "before its first epoch"
        last = self.epochs[-1]
        if self.steps_per_epoch and last.steps >= self.steps_per_epoch:
            return f"at the end of epoch {last.epoch}"
        return f"in epoch {last.epoch} at step {last.steps + 1}"

    @property
    def headline(self) -> str:
        """This fit in one line (without a --compare speed-up: see TimedFitResult.headline)."""
        return fit_headline(self)

    @property
    def closed_epochs(self) -> list[Epoch]:
        return [e for e in self.epochs if e.time_s is not None]

    @property
    def epoch_mean_s(self) -> float | None:
        """The mean of the fit's finished epochs (the headline, the table and the history record)."""
        if not self.epochs_seen:
            return None
        closed = self.closed_epochs
        return sum(e.time_s or 0.0 for e in closed) / len(closed) if closed else None

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            if f.name in ("timeline_png", "step_times"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
            elif hasattr(value, "to_dict"):
                value = value.to_dict()
            out[f.name] = value
        return out

    def plot(self) -> Any:
        """A matplotlib Figure of this fit's timeline (needs matplotlib)."""
        return plot.figure(self)


@dataclass(frozen=True)
class TimedFitResult(Rendered):
    """What one ``%%timed_fit`` cell measured: a report per fit, and what ran after the cell."""

    reports: list[FitReport]
    cell_s: float
    complete: bool = True
    error: str | None = None  # the exception that ended the cell, if any
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)  # with --compare, one per model
    whatifs: list[WhatIf] = field(default_factory=list)  # with --whatif, one per model
    history_path: str | None = None  # where this cell's runs were recorded
    runtime: str | None = None  # where the kernel ran (environment.Runtime.kind): the advice depends on it
    accelerator: str | None = None  # Colab's runtime type
    # what to tell the user after the result (the timelines saved), and what went wrong showing it:
    # for the display, not part of the result's data (not in to_dict)
    said: list[str] = field(default_factory=list, repr=False)
    problems: list[str] = field(default_factory=list, repr=False)
    # how it reads, not what it measured (not in to_dict): what this session was told in an earlier
    # cell ("no gpu", "history"), and whether the text shows every table (-d) or the short answer
    told: frozenset = field(default=frozenset(), repr=False, compare=False)
    detailed: bool = field(default=False, repr=False, compare=False)

    def tables(self) -> list[Table]:
        return fit_view.tables(self)

    def text_tables(self) -> list[Table] | None:
        return None if self.detailed or not self.reports else brief_view.brief(self)

    def __len__(self) -> int:
        return len(self.reports)

    def __getitem__(self, i: int) -> FitReport:
        return self.reports[i]

    def plot(self, fit: int = 1) -> Any:
        """A matplotlib Figure of the timeline of the cell's fit number ``fit`` (1 = the first)."""
        return self.reports[fit - 1].plot()

    def comparison_for(self, report: FitReport) -> Comparison | None:
        """The --compare result of this fit's model, shown with the model's first fit."""
        first = next((r for r in self.reports if r.model == report.model), None)
        if first is not report:
            return None
        return next((c for c in self.comparisons if c.model == report.model), None)

    def whatif_for(self, report: FitReport) -> WhatIf | None:
        """The --whatif result of this fit's model, shown with the model's first fit."""
        first = next((r for r in self.reports if r.model == report.model), None)
        if first is not report:
            return None
        return next((w for w in self.whatifs if w.model == report.model), None)

    @property
    def headlines(self) -> list[str]:
        numbered = len(self.reports) > 1
        return [fit_headline(r, self.comparison_for(r), numbered) for r in self.reports]

    @property
    def headline(self) -> str:
        """The answer, one line per fit: where it trained, how fast, and what holds it back."""
        if not self.reports:
            return NO_STEP_SEEN
        return "\n".join(self.headlines)

    @property
    def no_gpu(self) -> str | None:
        """The one explanation of a missing GPU, when no fit saw one and no comparison found one."""
        if not self.reports or any(r.gpus for r in self.reports) or all(r.failed for r in self.reports):
            return None
        if any(run.is_gpu and run.error is None for c in self.comparisons for run in c.runs):
            return None  # the history brought a GPU run in
        return no_gpu_advice(self.runtime, self.accelerator)

    def to_dict(self) -> dict:
        return {
            "headline": self.headline,
            "runtime": self.runtime,
            "cell_s": self.cell_s,
            "complete": self.complete,
            "error": self.error,
            "notes": list(self.notes),
            "reports": [r.to_dict() for r in self.reports],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "whatifs": [w.to_dict() for w in self.whatifs],
            "history_path": self.history_path,
        }
