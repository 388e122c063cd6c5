"""A background thread that samples the GPUs (through :mod:`colab_magic.nvml`) and the host
(through psutil) while a fit runs, into bounded time series.

GPU utilisation comes from the driver's own buffer of timestamped samples
(``nvmlDeviceGetSamples``: about six a second, finer than our polling) where the GPU keeps one, and
from polling otherwise. A GPU that stops answering mid-run leaves a recorded gap; training goes on.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

from . import nvml
from .defaults import DEFAULT_INTERVAL
from .stats import Series

# Seconds between host and GPU readings. GPU utilisation comes from the driver's own sample buffer
# (about six samples a second) whatever this is; 0.5 s kept the sampler under 0.5% of a core on an
# H200 machine (bench/results), where 0.25 s cost 0.7%.
# Read every SLOW_EVERY ticks (once a second by default): temperature, clocks, clock-event
# reasons and the process list, which change slowly, and the driver's utilisation sample buffer,
# which holds several seconds of samples anyway. On an H200, nvmlDeviceGetSamples took 1.4 ms a call
# (memory, utilisation and power: 2-9 us each); read every tick it made the sampler cost 1% of a core.
SLOW_EVERY = 2


GPM_SERIES = tuple(nvml.GPM_METRICS)  # sm_activity_pct, sm_occupancy_pct, tensor_activity_pct, dram_bw_pct


@dataclass
class GpuTrack:
    index: int
    name: str | None
    memory_total: int | None
    power_limit_w: float | None
    capacity: int = 2048
    util_source: str = "driver samples"  # or "polled"
    series: dict[str, Series] = field(default_factory=dict)
    clock_events: dict[str, int] = field(default_factory=dict)  # reason -> readings that showed it
    last_clock_events: tuple = ()  # the reasons of the latest full reading (the live view's mark)
    readings: int = 0
    full_readings: int = 0  # readings that included the slow metrics (clock events among them)
    gaps: list[list[float | None]] = field(default_factory=list)  # [start, end] in wall time; end None: open
    last_sample_us: int = 0
    # GPM: why it is not read (None when it is); the fit's first and the latest sample; the metrics
    # between the first and the last sample (the whole window, exact); readings and failed readings
    gpm_note: str | None = None
    gpm_first: object = None
    gpm_last: object = None
    gpm_window: dict | None = None
    gpm_readings: int = 0
    gpm_failures: int = 0

    def __post_init__(self) -> None:
        names = ("util", "memory_used", "process_memory", "power_w", "temperature_c", "sm_clock_mhz") + GPM_SERIES
        self.series = {name: Series(self.capacity) for name in names}


class Sampler:
    def __init__(self, interval: float = DEFAULT_INTERVAL, capacity: int = 2048) -> None:
        if not interval > 0:
            raise ValueError("interval must be > 0")
        self.interval = interval
        self.capacity = capacity
        self.host = {name: Series(capacity) for name in ("cpu_system", "cpu_process", "rss", "own", "ram_used")}
        self.ram_total = psutil.virtual_memory().total
        self.logical_cores = psutil.cpu_count() or 1
        self.gpus: list[GpuTrack] = []
        self.gpu_note: str | None = None
        self.marks: list[list] = []  # [wall time, [energy mJ per GPU]] at the start, each epoch end, the end
        self.ticks = 0
        self.errors: list[str] = []
        self.cpu_seconds = 0.0  # the sampler thread's own CPU time: its cost
        self.stop_wait_s = 0.0
        self.started: float | None = None  # wall-clock time.time() of the first and last readings
        self.stopped: float | None = None
        self._nvml = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._marks_lock = threading.Lock()
        self.ready = threading.Event()  # set once NVML is up and the first energy mark is taken
        # Called with the sampler after each regular reading, on its thread (the live view); a listener
        # that fails is recorded in errors and never stops the sampling.
        self.listeners: list = []
        self._pid = os.getpid()
        self._proc = psutil.Process(self._pid)

    # --- lifecycle ------------------------------------------------------------------------------
    # Everything slow happens on the sampler's thread: NVML's start-up and its energy counter (3 ms a
    # read on an H200) would otherwise add to the user's fit, once per fit and once per epoch.
    def start(self) -> Sampler:
        self.started = time.time()
        self._last_cpu = (time.monotonic(), psutil.cpu_times(), self._proc.cpu_times())
        self._thread = threading.Thread(target=self._run, name="colab_magic-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take a last reading, release NVML and end the thread. Safe to call twice."""
        if self._thread is None:
            return
        waited = time.perf_counter()
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        self.stop_wait_s = time.perf_counter() - waited  # what stopping cost the caller

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        begin = time.thread_time()
        try:
            self._open()
            while True:
                woken = self._wake.wait(self.interval)
                self._wake.clear()
                if self._stopping:
                    break
                self._fill_marks()
                if not woken:
                    self._tick()
                    self._tell()
            self._tick(final=True)
            self.stopped = time.time()
            self.mark()
            self._fill_marks()
        except Exception as exc:  # noqa: BLE001 - never let the thread die silently
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if self.stopped is None:
                self.stopped = time.time()
            self._close_gpm()
            if self._nvml:
                self._nvml = False
                nvml.stop()
            self.cpu_seconds = time.thread_time() - begin

    def _open(self) -> None:
        self._nvml = nvml.start()
        if self._nvml:
            for i in range(nvml.device_count()):
                info = nvml.static_info(i) or {}
                self.gpus.append(
                    GpuTrack(i, info.get("name"), info.get("memory_total"), info.get("power_limit_w"), self.capacity)
                )
            if not self.gpus:
                self.gpu_note = "NVML found no NVIDIA GPU"
        else:
            self.gpu_note = nvml.reason()
        for track in self.gpus:
            track.last_sample_us = int((self.started or time.time()) * 1e6)
            track.gpm_note = nvml.gpm_unavailable(track.index)
            if track.gpm_note is None:
                track.gpm_first = track.gpm_last = nvml.gpm_sample(track.index)
                if track.gpm_first is None:
                    track.gpm_note = "the first GPM sample failed"
        self.mark()
        self._fill_marks()
        self.ready.set()

    # --- readings -------------------------------------------------------------------------------
    def mark(self) -> None:
        """Note an epoch boundary. Cheap on the caller's thread: the sampler's thread reads the energy
        counters right after, which gives exact energy per epoch from two readings."""
        with self._marks_lock:
            self.marks.append([time.time(), None])
        self._wake.set()

    def _fill_marks(self) -> None:
        with self._marks_lock:
            pending = [m for m in self.marks if m[1] is None]
        for m in pending:
            m[1] = [nvml.energy_mj(t.index) for t in self.gpus] if self._nvml else []

    def _tick(self, final: bool = False) -> None:
        # Sampling must never stop training: a failed reading is recorded and the next one tried.
        try:
            now = time.time()
            self._sample_host(now)
            full = final or self.ticks % SLOW_EVERY == 0
            for track in self.gpus:
                self._sample_gpu(track, now, full)
            self.ticks += 1
        except Exception as exc:  # noqa: BLE001 - any failure here is reported, not raised
            if len(self.errors) < 10:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _tell(self) -> None:
        for listener in list(self.listeners):
            try:
                listener(self)
            except Exception as exc:  # noqa: BLE001 - a display that fails must not stop the sampling
                if len(self.errors) < 10:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _sample_host(self, now: float) -> None:
        mono, sys_times, proc_times = time.monotonic(), psutil.cpu_times(), self._proc.cpu_times()
        last_mono, last_sys, last_proc = self._last_cpu
        self._last_cpu = (mono, sys_times, proc_times)
        total = sum(sys_times) - sum(last_sys)
        idle = (sys_times.idle + getattr(sys_times, "iowait", 0.0)) - (last_sys.idle + getattr(last_sys, "iowait", 0.0))
        if total > 0:
            # idle can come out a rounding error above total (-3.6e-08 % seen): a percentage stays in 0-100
            self.host["cpu_system"].add(now, min(100.0, max(0.0, 100.0 * (1.0 - idle / total))))
        wall = mono - last_mono
        if wall > 0:
            used = (proc_times.user + proc_times.system) - (last_proc.user + last_proc.system)
            self.host["cpu_process"].add(now, 100.0 * used / wall)  # % of one core
        memory = self._proc.memory_info()
        self.host["rss"].add(now, float(memory.rss))
        self.host["own"].add(now, float(memory.rss - getattr(memory, "shared", 0)))  # "shared": Linux only
        vm = psutil.virtual_memory()
        self.host["ram_used"].add(now, float(vm.total - vm.available))

    def _sample_gpu(self, track: GpuTrack, now: float, full: bool) -> None:
        reading = nvml.reading(track.index, full=full)
        if reading is None:
            if track.gaps and track.gaps[-1][1] is None:
                return
            track.gaps.append([now, None])
            return
        if track.gaps and track.gaps[-1][1] is None:
            track.gaps[-1][1] = now
        track.readings += 1
        s = track.series
        if track.util_source == "driver samples" and full:
            samples = nvml.utilization_samples(track.index, track.last_sample_us)
            if samples is None:
                track.util_source = "polled"
            else:
                for ts_us, value in samples:
                    s["util"].add(ts_us / 1e6, value)
                if samples:
                    track.last_sample_us = samples[-1][0]
        if track.util_source == "polled":
            s["util"].add(now, reading["util_gpu"])
        s["memory_used"].add(now, reading["memory_used"])
        s["power_w"].add(now, reading["power_w"])
        if not full:
            return
        track.full_readings += 1
        s["temperature_c"].add(now, reading["temperature_c"])
        s["sm_clock_mhz"].add(now, reading["sm_clock_mhz"])
        track.last_clock_events = tuple(reading["clock_events"] or ())
        for reason in reading["clock_events"] or ():
            track.clock_events[reason] = track.clock_events.get(reason, 0) + 1
        if track.gpm_first is not None:
            self._sample_gpm(track, now)
        procs = nvml.processes(track.index)
        if procs is not None:
            mine = [used for pid, used in procs if pid == self._pid and used is not None]
            s["process_memory"].add(now, float(sum(mine)) if mine else 0.0)

    def _sample_gpm(self, track: GpuTrack, now: float) -> None:
        """A GPM reading since the previous one (once a second: about 1 ms of NVML each). A failed
        sample is a gap in the series; the whole-window figure still comes from the first and the
        last good samples."""
        current = nvml.gpm_sample(track.index)
        metrics = nvml.gpm_metrics(track.gpm_last, current) if current is not None else None
        if metrics is None:
            track.gpm_failures += 1
            nvml.gpm_free(current)
            return
        track.gpm_readings += 1
        for key in GPM_SERIES:
            track.series[key].add(now, metrics.get(key))
        if track.gpm_last is not track.gpm_first:
            nvml.gpm_free(track.gpm_last)
        track.gpm_last = current

    def _close_gpm(self) -> None:
        for track in self.gpus:
            if track.gpm_first is None:
                continue
            if track.gpm_last is not track.gpm_first:
                track.gpm_window = nvml.gpm_metrics(track.gpm_first, track.gpm_last)
                nvml.gpm_free(track.gpm_last)
            nvml.gpm_free(track.gpm_first)
            track.gpm_first = track.gpm_last = None

    # --- results --------------------------------------------------------------------------------
    def energy_j_between(self, gpu_pos: int, start: int = 0, end: int = -1) -> float | None:
        """Joules used by GPU ``gpu_pos`` between two marks (indices into :attr:`marks`)."""
        if len(self.marks) < 2:
            return None
        first, last = self.marks[start][1], self.marks[end][1]
        if not first or not last or gpu_pos >= len(first) or first[gpu_pos] is None or last[gpu_pos] is None:
            return None
        return (last[gpu_pos] - first[gpu_pos]) / 1000.0
