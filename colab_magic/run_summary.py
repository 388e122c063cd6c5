"""One run, one shape: :class:`RunSummary` is what a fit, a comparison's timed clone and a history
record have in common, and :class:`Comparison` holds a model's runs side by side.

A run summary is built from a fit's report (:meth:`RunSummary.from_report`) or from a history record
(:meth:`RunSummary.from_record`), writes its own record (:meth:`RunSummary.to_record`), and owns the
two rules every table uses: an epoch's seconds (:meth:`RunSummary.epoch_s`) and the speed-up over a
CPU run (:meth:`RunSummary.speedup_over`), with its interval where the runs have one (a short
timing's, :mod:`colab_magic.intervals`). :class:`WhatIf` holds a model's variants beside the model as
it is. Nothing here imports more than the typed parts and the interval arithmetic.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from . import intervals
from .parts import ModelSignature

# The keys of a history record, in the order they are written.
RECORD_KEYS = (
    "id", "time", "kind", "loop", "model", "signature", "signature_id", "batch_size", "steps_per_epoch", "backend",
    "device", "device_name", "complete", "total_steps", "step_median_s", "step_p90_s", "step_mean_s",
    "first_step_s", "epoch_mean_s", "projected_epoch_s", "samples_per_s", "gpu_util_mean", "cpu_util_mean", "env",
    "input_wait_share", "cluster", "variant", "step_mean_interval_s", "projected_epoch_interval_s", "speedup",
    "speedup_interval", "timed_s", "timed_steps",
)
FIT_BLOCKS = 10  # a fit's steps in this many blocks give its mean's interval
GAIN_CLEAR = 1.15  # a speed-up whose interval starts this high is a clear gain


@dataclass
class RunSummary:
    device: str  # "CPU:0", "GPU:0"
    kind: str = "fit"  # "fit": the user's own; "compare": a copy timed for a few steps
    loop: str | None = None  # what drove the training: "keras", "torch", "marked" (None: an older record)
    model: str | None = None
    name: str | None = None  # the GPU's name, or "CPU"
    backend: str | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    complete: bool = True
    total_steps: int | None = None
    step_median_s: float | None = None
    step_p90_s: float | None = None
    step_mean_s: float | None = None
    first_step_s: float | None = None
    epoch_mean_s: float | None = None  # measured: the mean of the fit's finished epochs
    projected_epoch_s: float | None = None  # steps per epoch x mean step + the epoch's fixed cost
    samples_per_s: float | None = None
    gpu_util_mean: float | None = None  # percent, the run's own GPU
    cpu_util_mean: float | None = None  # percent of all cores
    memory_peak: float | None = None  # bytes: GPU memory for a GPU run, the process's RSS for a CPU run
    speedup: float | None = None  # against the CPU run it stands beside
    error: str | None = None  # why this run could not be timed
    source: str = "measured now"  # or where and when a run from the history ran
    signature: ModelSignature | None = None
    env: dict | None = None  # where a recorded run ran
    time: str | None = None  # ISO time of a recorded run
    id: str | None = None  # a recorded run's id
    recorded_signature_id: str | None = None  # the id a record was written with
    report: Any = None  # the timed clone's FitReport (a comparison's runs)
    input_wait_share: float | None = None  # 0-1: the share of a step that waited for data (the input check)
    cluster: dict | None = None  # a process of a multi-process run (colab_magic.cluster)
    # A trial (--compare, --whatif): the change it made (None: the model as it is), what it timed,
    # and 95% intervals: the mean step's, the projected epoch's, the speed-up's
    variant: str | None = None
    timed_s: float | None = None
    timed_steps: int | None = None
    step_mean_interval_s: tuple | None = None
    projected_epoch_interval_s: tuple | None = None
    speedup_interval: tuple | None = None
    trial_s: float | None = None  # what the trial cost: copy, compile, warm-up and window

    @property
    def util_mean(self) -> float | None:
        """The run's own device: GPU utilisation for a GPU run, the host's CPU for a CPU run."""
        return self.gpu_util_mean if self.is_gpu else self.cpu_util_mean

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("GPU")

    @property
    def is_cpu(self) -> bool:
        return self.device.startswith("CPU")

    def epoch_s(self, steps_per_epoch: int | None = None) -> tuple[float | None, str | None]:
        """Seconds per epoch and how they were had ("measured" or "projected"); for an epoch of
        ``steps_per_epoch`` steps when given (the run's own epoch otherwise)."""
        same = steps_per_epoch is None or steps_per_epoch == self.steps_per_epoch
        if self.epoch_mean_s is not None and same:
            return self.epoch_mean_s, "measured"
        if self.projected_epoch_s is not None and same:
            return self.projected_epoch_s, "projected"
        steps = steps_per_epoch or self.steps_per_epoch
        step = self.step_mean_s or self.step_median_s  # the mean: an epoch is the sum of its steps
        if steps and step:
            return steps * step, "projected"
        return None, None

    def speedup_over(self, cpu: RunSummary) -> float | None:
        """The CPU's step over this run's: from the means when both have one (records written before
        the mean was kept have only the median), else from the medians."""
        if cpu.step_mean_s and self.step_mean_s:
            return cpu.step_mean_s / self.step_mean_s
        if cpu.step_median_s and self.step_median_s:
            return cpu.step_median_s / self.step_median_s
        return None

    def step_speedup_interval(self, base: RunSummary) -> tuple | None:
        """The interval of ``base``'s mean step over this run's, where both have one."""
        if base.step_mean_s is None or self.step_mean_s is None:
            return None
        return intervals.ratio_interval(base.step_mean_s, base.step_mean_interval_s, self.step_mean_s,
                                        self.step_mean_interval_s)

    def throughput_over(self, base: RunSummary) -> tuple[float | None, tuple | None]:
        """Samples per second over ``base``'s, and its interval: the speed-up of the same epoch when
        the batches differ (--whatif's batch x4), and the step speed-up when they are the same."""
        if not (base.step_mean_s and self.step_mean_s):
            return self.speedup_over(base), None
        scale = self.batch_size / base.batch_size if self.batch_size and base.batch_size else 1.0
        found = self.step_speedup_interval(base)
        value = scale * base.step_mean_s / self.step_mean_s
        return value, (scale * found[0], scale * found[1]) if found else None

    @property
    def gain(self) -> str | None:
        """What a measured speed-up says: "faster" when its interval starts at GAIN_CLEAR or above,
        "slower" when it ends under 1, else "no clear gain" (the value stands in for a missing interval)."""
        if self.speedup is None:
            return None
        low, high = self.speedup_interval or (self.speedup, self.speedup)
        if low >= GAIN_CLEAR:
            return "faster"
        if high < 1:
            return "slower"
        return "no clear gain"

    @classmethod
    def from_report(cls, report: Any, kind: str = "fit", device: str | None = None) -> RunSummary:
        """From a :class:`~colab_magic.report.FitReport`; ``device`` where it ran, if not where its
        first weight lives."""
        step = report.step
        device = device or report.device or "?"
        gpu = next((g for g in report.gpus if device == f"GPU:{g.index}"), None)
        return cls(
            device=device,
            kind=kind,
            loop=report.loop,
            model=report.model,
            name=gpu.name if gpu else ("CPU" if device.startswith("CPU") else None),
            backend=report.backend,
            batch_size=report.batch_size,
            steps_per_epoch=report.steps_per_epoch,
            complete=report.complete,
            total_steps=report.total_steps,
            step_median_s=step.median if step else None,
            step_p90_s=step.p90 if step else None,
            step_mean_s=step.mean if step else None,
            first_step_s=report.first_step_s,
            epoch_mean_s=report.epoch_mean_s if kind == "fit" else None,
            samples_per_s=report.samples_per_s,
            gpu_util_mean=gpu.util_mean if gpu else None,
            cpu_util_mean=report.host.cpu_system_mean,
            memory_peak=gpu.memory_peak if gpu else report.host.rss_peak,
            signature=report.signature,
            report=report,
            input_wait_share=report.input_wait.wait_share if report.input_wait else None,
            cluster=report.cluster if kind == "fit" else None,
            step_mean_interval_s=(intervals.mean_interval(report.step_times, blocks=FIT_BLOCKS, predict=False)
                                  if kind == "fit" and report.step_times else None),
        )

    @classmethod
    def from_record(cls, record: dict) -> RunSummary:
        """A run read back from the history; fields it lacks (older records) stay None."""
        known = {f.name for f in fields(cls)} - {"signature", "report", "name", "source", "device", "kind",
                                                 "recorded_signature_id"}
        env: dict = record["env"] if isinstance(record.get("env"), dict) else {}
        given: dict[str, Any] = {k: record.get(k) for k in known if k in record}
        run = cls(
            device=str(record.get("device") or "?"),
            kind=str(record.get("kind") or "?"),
            name=record.get("device_name"),
            source=f"history: {env.get('runtime', '?')} on {env.get('host', '?')}, {record.get('time', '?')}",
            signature=ModelSignature.from_dict(record.get("signature")),
            **given,
        )
        run.env = env
        if not isinstance(run.cluster, dict):
            run.cluster = None
        for name in ("step_mean_interval_s", "projected_epoch_interval_s", "speedup_interval"):
            value = getattr(run, name)
            setattr(run, name, tuple(value) if is_pair(value) else None)
        if isinstance(record.get("signature_id"), str):
            run.recorded_signature_id = record["signature_id"]
        return run

    @property
    def signature_id(self) -> str:
        if self.recorded_signature_id:
            return self.recorded_signature_id
        # a run with no signature: the id of all-None parts, as version 0.1 wrote it (layers None, not [])
        return (self.signature or ModelSignature(None, None, None)).id  # type: ignore[arg-type]

    def to_record(self, env: dict) -> dict:
        """The history line for this run: a new id and the time now."""
        values = {
            "id": uuid.uuid4().hex[:8],
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "signature": self.signature.to_dict() if self.signature else None,
            "signature_id": self.signature_id,
            "device_name": self.name,
            "env": env,
        }
        return {key: values[key] if key in values else getattr(self, key) for key in RECORD_KEYS}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("report", "signature")}
        for name in ("step_mean_interval_s", "projected_epoch_interval_s", "speedup_interval"):
            d[name] = list(d[name]) if d[name] is not None else None
        d["signature"] = self.signature.to_dict() if self.signature else None
        d["util_mean"] = self.util_mean
        d["report"] = self.report.to_dict() if self.report is not None else None
        return d


@dataclass
class Comparison:
    """One model timed on several devices from the same start (``%%timed_fit --compare``)."""

    model: str
    steps: int
    steps_per_epoch: int | None
    batch_size: int | None
    runs: list[RunSummary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why no comparison ran for this model
    wall_s: float | None = None  # what the comparison cost, clones and compiling included
    fixed_s: float | None = None  # an epoch's time outside its steps, from the user's fit
    budget_s: float | None = None  # what the trials were meant to cost at most
    budget_share: float = 0.0  # the budget as a share of the user's epoch (--budget / 100)
    needed_budget: int | None = None  # compiling alone went over the budget: the --budget that would hold it
    interrupted: bool = False  # Ctrl-C stopped the trials: the runs are those that finished

    @property
    def cpu(self) -> RunSummary | None:
        return next((r for r in self.runs if r.is_cpu and (r.step_mean_s or r.step_median_s)), None)

    def add_speedups(self) -> None:
        cpu = self.cpu
        if cpu is not None:
            for run in self.runs:
                if run is cpu:
                    run.speedup, run.speedup_interval = 1.0, None
                else:
                    run.speedup, run.speedup_interval = run.throughput_over(cpu)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["runs"] = [r.to_dict() for r in self.runs]
        d["notes"] = list(self.notes)
        return d


@dataclass
class WhatIf:
    """One model's variants (``%%timed_fit --whatif``), each timed on the device it trained on, from the
    same start, beside the model as it is."""

    model: str
    device: str
    baseline: RunSummary | None = None  # the model as it is, timed the same way
    runs: list[RunSummary] = field(default_factory=list)  # one per variant, in the order asked
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why no variant could run for this model
    wall_s: float | None = None  # what the what-if cost (its baseline included, unless --compare's was used)
    budget_s: float | None = None
    budget_share: float = 0.0
    needed_budget: int | None = None
    # the default list's changes that would have gone over the budget, not run (their --whatif keys)
    left_out: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C stopped the trials: the runs are those that finished

    def add_speedups(self) -> None:
        base = self.baseline
        if base is None or base.error is not None:
            return
        for run in self.runs:
            if run.error is None:
                run.speedup, run.speedup_interval = run.throughput_over(base)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "device": self.device,
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "runs": [r.to_dict() for r in self.runs],
            "notes": list(self.notes),
            "skipped": self.skipped,
            "wall_s": self.wall_s,
            "budget_s": self.budget_s,
            "budget_share": self.budget_share,
            "needed_budget": self.needed_budget,
            "left_out": list(self.left_out),
            "interrupted": self.interrupted,
        }


def is_pair(value: Any) -> bool:
    """Two numbers (an interval), as a record holds them."""
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
