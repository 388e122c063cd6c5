"""The typed parts of a fit's report: step statistics, epochs, host and GPU summaries, the sampler's own
figures, the model's signature, findings and the input check.

Plain data, shaped like IPython's ``TimeitResult``: fields with their units in the name where they
have one, derived figures as properties, ``to_dict()`` for the stable public format. This module
imports nothing from the package: every other module may use these types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Clock-event ("throttle") reasons that mean a GPU runs slower than it could while it has work to do.
THROTTLING_REASONS = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake"})


class Part:
    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]  # every Part is a dataclass


@dataclass
class StepStats(Part):
    """Seconds per step of the steady state (the first execution and warm-up steps left out)."""

    n: int
    mean: float
    median: float
    p10: float
    p90: float
    p95: float
    min: float
    max: float


@dataclass
class Epoch(Part):
    epoch: int  # 1 for the first
    time_s: float | None  # None for an epoch that did not finish
    train_s: float | None
    val_s: float
    steps: int
    steps_s: float  # time inside steps
    step_median_s: float | None
    complete: bool
    energy_j: list[float | None] = field(default_factory=list)  # per GPU
    # Where the epoch's time went outside its steps (they sum with steps_s and val_s to time_s):
    # before its first step (setting up the data iterator, and on TensorFlow closing the last epoch's),
    # and after its last step other than validation (epoch-end callbacks, logging); and of the whole
    # epoch, what the user's callbacks took (inside steps for batch hooks: a part, not a further term)
    before_steps_s: float | None = None
    after_steps_s: float | None = None
    callbacks_s: float = 0.0

    @property
    def outside_steps_s(self) -> float | None:
        """Time in neither a step nor validation (iterator set-up, shuffling, callbacks): the epoch's
        fixed cost. None for an epoch that did not finish."""
        if self.time_s is None:
            return None
        return max(0.0, self.time_s - self.steps_s - self.val_s)


@dataclass
class HostSummary(Part):
    cpu_system_mean: float | None  # percent of all cores
    cpu_system_p95: float | None
    cpu_process_mean: float | None  # percent of one core
    cpu_process_p95: float | None
    rss_peak: float | None  # bytes
    ram_used_peak: float | None
    ram_total: int | None
    logical_cores: int
    # the process's own memory (resident, less the pages it shares: libraries, mapped files), which the
    # machine's "used" counts, unlike the shared pages (file cache): below ram_used_peak, as RSS may not be
    own_peak: float | None = None


@dataclass
class GpuSummary(Part):
    index: int
    name: str | None
    util_mean: float | None  # percent of time a kernel ran
    util_p95: float | None
    util_source: str  # "driver samples" or "polled"
    util_samples: int
    memory_peak: float | None  # bytes, NVML's "used" (every process)
    memory_total: int | None
    process_memory_peak: float | None  # bytes, this process
    power_mean_w: float | None
    power_limit_w: float | None
    energy_j: float | None
    energy_source: str | None  # "counter" or "estimated from power"
    temperature_max_c: float | None
    sm_clock_mean_mhz: float | None
    clock_events: dict[str, float]  # reason -> share of readings that showed it
    throttled_fraction: float  # the largest share of a throttling reason
    readings: int
    gaps: list[list[float]]  # [start, end] in seconds since the fit began, where NVML did not answer
    gap_s: float
    # GPM (Hopper and newer), over the fit: what the SMs and tensor cores did, in percent
    gpm_note: str | None = None  # why GPM was not read; None when it was
    sm_activity_pct: float | None = None  # SMs busy (not just "a kernel ran"): 80+ is good use, <50 poor
    sm_occupancy_pct: float | None = None  # resident warps of the maximum
    tensor_activity_pct: float | None = None  # SMs doing tensor-core work
    dram_bw_pct: float | None = None  # memory bandwidth of the maximum
    gpm_readings: int = 0
    gpm_failures: int = 0  # readings that failed: gaps in the GPM series

    @property
    def label(self) -> str:
        return f"GPU {self.index}" + (f" ({self.name})" if self.name else "")

    @property
    def throttling(self) -> dict[str, float]:
        return {k: v for k, v in self.clock_events.items() if k in THROTTLING_REASONS}


@dataclass
class SamplerFigures(Part):
    started: float | None  # wall-clock (time.time()) span the sampler covered
    stopped: float | None
    interval_s: float
    ticks: int
    cpu_s: float
    stop_wait_s: float
    cost_pct_of_core: float | None
    errors: list[str] = field(default_factory=list)


@dataclass
class ModelSignature(Part):
    """Layer types, parameter count and input shape: what makes two runs "the same model"."""

    layers: list[str] = field(default_factory=list)
    params: int | None = None
    input_shape: list[int | None] | None = None

    @property
    def id(self) -> str:
        text = json.dumps([self.layers, self.params, self.input_shape])
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: Any) -> ModelSignature:
        """From a history record's ``signature`` (anything else gives the empty signature)."""
        if not isinstance(data, dict):
            return cls()
        layers = data.get("layers")
        return cls(list(layers) if isinstance(layers, list) else [], data.get("params"), data.get("input_shape"))


@dataclass
class Finding(Part):
    rule: str
    title: str
    evidence: str
    fix: str
    action: str = ""  # the fix in a few words, for the headline


@dataclass
class CallbackTime(Part):
    """One of the user's callbacks (by class name): the seconds its hooks took."""

    name: str
    total_s: float
    epochs_s: list[float]  # in each epoch of the report, in order
    outside_s: float = 0.0  # outside every epoch (on_train_begin, on_epoch_begin before the epoch's clock)


@dataclass
class Loader(Part):
    """The PyTorch DataLoader whose batches fed a loop's steps: its settings and what a batch cost."""

    dataset: str  # the Dataset's class name
    batch_size: int | None
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    batch_wait_s: float  # the mean time inside its __next__ per batch (steps' micro-batches included; others' too)
    # with worker processes: the share of batches already received when asked for (None: no workers)
    ready_share: float | None = None
    others: int = 0  # other DataLoaders whose batches fed the same steps (zip(a, b)): their wait counted too
    # new passes started within an epoch, each after a single batch (next(iter(loader)) in the loop), and the
    # mean time each took to start (counted in the wait)
    restarts: int = 0
    restart_s: float = 0.0
    whole_batches: bool = False  # batch_size=None and a BatchSampler: each of its indices a whole batch


@dataclass
class InputWait(Part):
    """The input check: the user's mean step against the same step with one batch held in memory."""

    step_s: float
    compute_step_s: float
    wait_share: float  # of a step, 0-1
    check_s: float  # what the check cost
    steps: int  # the held-batch steps timed
    wait_share_interval: tuple[float, float] | None = None  # 95%, 0-1; None: too few steps to say
    # "copy": the input check (a copy of the model on one batch held in memory); "DataLoader": the time
    # inside a PyTorch DataLoader's __next__, measured in the user's own steps
    source: str = "copy"
    loader: Loader | None = None  # that DataLoader (None for "copy"): which fix applies depends on it

    @property
    def wait_share_low(self) -> float:
        """The least share of a step the measurement supports: the verdicts' thresholds apply to it."""
        return self.wait_share_interval[0] if self.wait_share_interval else self.wait_share
