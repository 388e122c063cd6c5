"""A stand-in for the ``pynvml`` module (nvidia-ml-py): the hardware boundary, and the only fake.

It mimics the calls colab_magic makes, with the real signatures, units and error behaviour: values in
mW / mJ / bytes, ``NVMLError`` carrying ``.value``, ``NotSupported`` for metrics a GPU lacks, and
``GPU_IS_LOST`` once a GPU is marked lost. Energy grows with time at the GPU's power, and the
utilisation sample buffer fills at 6 samples a second, as on real hardware.

Readings can change mid-run (:meth:`FakeNvml.change`), and time can be a :class:`ManualClock` that
the test moves: then energy, the driver's sample buffer and GPM samples are exact functions of the
script, and a test can assert exact means, percentiles, sample counts and joules.
"""

from __future__ import annotations

import threading
import time
import types
from dataclasses import dataclass, field

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
# GPM metric ids and the request version, as nvml.h numbers them
NVML_GPM_METRIC_SM_UTIL = 2
NVML_GPM_METRIC_SM_OCCUPANCY = 3
NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5
NVML_GPM_METRIC_DRAM_BW_UTIL = 10
NVML_GPM_METRICS_GET_VERSION = 1
NVML_GPM_METRIC_MAX = 98

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGpu:
    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total: int = 40 * 2**30
    memory_used: int = 2 * 2**30
    util_gpu: int = 87
    util_memory: int = 41
    temperature: int = 61
    power_mw: int = 250_000
    power_limit_mw: int = 400_000
    sm_clock: int = 1410
    mem_clock: int = 1215
    clock_events: int = 0
    capability: tuple = (8, 0)
    mig: tuple = (0, 0)
    processes: list = field(default_factory=list)  # [(pid, used bytes)]
    unsupported: set = field(default_factory=set)  # names of nvml functions that raise NotSupported
    lost: bool = False
    # GPM: metric id -> percent between any two samples; None for a GPU without GPM (before Hopper)
    gpm: dict | None = None
    gpm_fail: bool = False  # nvmlGpmSampleGet raises (a GPU that stops answering GPM mid-run)
    created: float = field(default_factory=time.time)
    energy_base_mj: int = 1_000_000
    # (time, utilisation) from each change on: what the driver's sample buffer holds at each instant
    util_steps: list = field(default_factory=list)
    gpm_steps: list = field(default_factory=list)  # (time, gpm dict) from each change on
    changed: float | None = None  # when power last changed: energy is integrated piecewise from here

    def gpm_between(self, metric: int, t1: float, t2: float) -> float | None:
        """A GPM metric between two samples: its time-weighted mean over [t1, t2], as the hardware's
        counters give it."""
        steps = self.gpm_steps or [(self.created, self.gpm)]
        if t2 <= t1:
            value = steps[0][1]
            for when, gpm in steps:
                if when <= t2:
                    value = gpm
            return value.get(metric) if value else None
        total = 0.0
        for n, (when, gpm) in enumerate(steps):
            end = steps[n + 1][0] if n + 1 < len(steps) else float("inf")
            overlap = min(end, t2) - max(when, t1)
            if overlap > 0:
                if gpm is None or gpm.get(metric) is None:
                    return None
                total += gpm[metric] * overlap
        return total / (t2 - t1)

    def util_at(self, t: float) -> int:
        value = self.util_gpu if not self.util_steps else self.util_steps[0][1]
        for when, util in self.util_steps:
            if when <= t:
                value = util
        return value


class ManualClock:
    """Wall time that moves only when the test says: ``clock.advance(0.5)``. It starts on a whole
    second, so sample timestamps in microseconds are exact integers."""

    def __init__(self, start: float | None = None):
        self.now = float(int(time.time()) + 1000) if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeNvml:
    """Holds the fake GPUs and builds the module object put into ``sys.modules['pynvml']``."""

    def __init__(self, gpus, init_error=None, driver="550.54.15", cuda=12040, clock=None):
        self.gpus = list(gpus)
        self.clock = clock or time.time
        if clock is not None:
            for g in self.gpus:
                g.created = clock()
        self.init_error = init_error
        self.driver = driver
        self.cuda = cuda
        self.initialised = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.gpm_live = 0  # GPM samples allocated and not yet freed
        self.module = self._build()

    def _build(self):
        m = types.ModuleType("pynvml")
        m.__file__ = __file__
        for name, value in globals().items():
            if name.startswith("NVML_"):
                setattr(m, name, value)
        m.NVMLError = NVMLError
        m.NVML_GPU_UTILIZATION_SAMPLES = 1
        m.c_nvmlGpmMetricsGet_t = GpmMetricsGet
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(m, name, getattr(self, name))
        return m

    def change(self, index: int, **readings) -> None:
        """New readings for GPU ``index`` from now on (``util_gpu=80, power_mw=300_000, ...``)."""
        g = self.gpus[index]
        now = self.clock()
        g.energy_base_mj = self._energy(g, now)
        g.changed = now
        if not g.util_steps:
            g.util_steps.append((g.created, g.util_gpu))
        if not g.gpm_steps:
            g.gpm_steps.append((g.created, g.gpm))
        for name, value in readings.items():
            if not hasattr(g, name):
                raise AttributeError(name)
            setattr(g, name, value)
        if "util_gpu" in readings:
            g.util_steps.append((now, g.util_gpu))
        if "gpm" in readings:
            g.gpm_steps.append((now, g.gpm))

    @staticmethod
    def _energy(g: FakeGpu, now: float) -> float:
        since = g.changed if g.changed is not None else g.created
        return g.energy_base_mj + (now - since) * g.power_mw

    # --- helpers -------------------------------------------------------------------------------
    def _gpu(self, handle, fn):
        with self.lock:
            self.calls[fn] = self.calls.get(fn, 0) + 1
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        gpu = self.gpus[handle]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if fn in gpu.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # --- the pynvml API ------------------------------------------------------------------------
    def nvmlInit(self):
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self):
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        self.shutdown_calls += 1
        self.initialised -= 1

    def nvmlDeviceGetCount(self):
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return index

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda

    def nvmlDeviceGetName(self, h):
        return self._gpu(h, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, h):
        return self._gpu(h, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self._gpu(h, "nvmlDeviceGetCudaComputeCapability").capability

    def nvmlDeviceGetMemoryInfo(self, h):
        g = self._gpu(h, "nvmlDeviceGetMemoryInfo")
        return types.SimpleNamespace(total=g.memory_total, used=g.memory_used, free=g.memory_total - g.memory_used)

    def nvmlDeviceGetUtilizationRates(self, h):
        g = self._gpu(h, "nvmlDeviceGetUtilizationRates")
        return types.SimpleNamespace(gpu=g.util_gpu, memory=g.util_memory)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._gpu(h, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetPowerUsage(self, h):
        return self._gpu(h, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        g = self._gpu(h, "nvmlDeviceGetTotalEnergyConsumption")
        return int(self._energy(g, self.clock()))

    def nvmlDeviceGetClockInfo(self, h, kind):
        g = self._gpu(h, "nvmlDeviceGetClockInfo")
        return g.sm_clock if kind == 1 else g.mem_clock

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._gpu(h, "nvmlDeviceGetCurrentClocksEventReasons").clock_events

    def nvmlDeviceGetMigMode(self, h):
        return list(self._gpu(h, "nvmlDeviceGetMigMode").mig)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        g = self._gpu(h, "nvmlDeviceGetComputeRunningProcesses")
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in g.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        self._gpu(h, "nvmlDeviceGetGraphicsRunningProcesses")
        return []

    def nvmlDeviceGetSamples(self, h, sampling_type, since_us):
        g = self._gpu(h, "nvmlDeviceGetSamples")
        # The driver keeps a ring buffer of samples every 1/6 s; return those newer than since_us.
        now_us = int(self.clock() * 1e6)
        start_us = max(int(g.created * 1e6), since_us + 1, now_us - 10_000_000)
        period = 1_000_000 // 6
        first = start_us + (-(start_us - int(g.created * 1e6)) % period)
        samples = [
            types.SimpleNamespace(timeStamp=t, sampleValue=types.SimpleNamespace(uiVal=g.util_at(t / 1e6)))
            for t in range(first, now_us + 1, period)
        ]
        if not samples:  # what real drivers answer when nothing is newer than the timestamp
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return 1, samples  # 1 = NVML_VALUE_TYPE_UNSIGNED_INT


    # --- GPM -------------------------------------------------------------------------------------
    def nvmlGpmQueryDeviceSupport(self, h):
        g = self._gpu(h, "nvmlGpmQueryDeviceSupport")
        return types.SimpleNamespace(version=1, isSupportedDevice=int(g.gpm is not None))

    def nvmlGpmSampleAlloc(self):
        with self.lock:
            self.gpm_live += 1
        return types.SimpleNamespace(gpu=None, t=None)

    def nvmlGpmSampleFree(self, sample):
        with self.lock:
            self.gpm_live -= 1

    def nvmlGpmSampleGet(self, h, sample):
        g = self._gpu(h, "nvmlGpmSampleGet")
        if g.gpm is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if g.gpm_fail:
            raise NVMLError(NVML_ERROR_UNKNOWN)
        sample.gpu, sample.t = h, self.clock()
        return sample

    def nvmlGpmMetricsGet(self, request):
        if request.version != NVML_GPM_METRICS_GET_VERSION:
            raise NVMLError(NVML_ERROR_UNKNOWN)
        first, second = request.sample1, request.sample2
        if first.t is None or second.t is None or first.gpu != second.gpu:
            raise NVMLError(NVML_ERROR_UNKNOWN)
        g = self._gpu(first.gpu, "nvmlGpmMetricsGet")
        for metric in request.metrics[: request.numMetrics]:
            value = g.gpm_between(metric.metricId, first.t, second.t)
            metric.nvmlReturn = NVML_SUCCESS if value is not None else NVML_ERROR_NOT_SUPPORTED
            metric.value = float(value) if value is not None else 0.0
        return request


class GpmMetricsGet:
    """pynvml's c_nvmlGpmMetricsGet_t: the request nvmlGpmMetricsGet fills in."""

    def __init__(self):
        self.version = 0
        self.numMetrics = 0
        self.sample1 = self.sample2 = None
        self.metrics = [types.SimpleNamespace(metricId=0, nvmlReturn=0, value=0.0) for _ in range(NVML_GPM_METRIC_MAX)]


def a100(**kw) -> FakeGpu:
    return FakeGpu(**kw)


def h100(**kw) -> FakeGpu:
    """A Hopper GPU with GPM: the SMs 40% active, occupancy 20%, tensor cores 25%, DRAM 30%."""
    defaults = dict(
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-22222222-2222-2222-2222-222222222222",
        memory_total=80 * 2**30,
        power_limit_mw=700_000,
        capability=(9, 0),
        gpm={NVML_GPM_METRIC_SM_UTIL: 40.0, NVML_GPM_METRIC_SM_OCCUPANCY: 20.0,
             NVML_GPM_METRIC_ANY_TENSOR_UTIL: 25.0, NVML_GPM_METRIC_DRAM_BW_UTIL: 30.0},
    )
    defaults.update(kw)
    return FakeGpu(**defaults)


def t4(**kw) -> FakeGpu:
    defaults = dict(
        name="Tesla T4",
        uuid="GPU-11111111-1111-1111-1111-111111111111",
        memory_total=15 * 2**30,
        memory_used=300 * 2**20,
        util_gpu=0,
        util_memory=0,
        temperature=44,
        power_mw=27_000,
        power_limit_mw=70_000,
        sm_clock=585,
        mem_clock=5000,
        capability=(7, 5),
        # Consumer and older boards lack some counters; colab_magic must show n/a, not fail.
        unsupported={"nvmlDeviceGetMigMode"},
    )
    defaults.update(kw)
    return FakeGpu(**defaults)
