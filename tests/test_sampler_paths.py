"""The sampler's own paths: exact host CPU figures from scripted psutil readings, failures that are
recorded instead of raised, the last reading at stop, and what a sampler that never ran reports.

psutil and the monotonic clock are the host's platform boundary: they are scripted here, as NVML is
by the fake pynvml. Everything else (the thread, the series, the report) is the real one."""

import threading
import time
import types
from collections import namedtuple

import pytest

from colab_magic import sampler as sampler_module
from colab_magic.fit_report import build_report
from colab_magic.observer import FitFacts, LoopPlan
from colab_magic.sampler import SLOW_EVERY, Sampler
from colab_magic.timing import StepTimer
from tests.fake_pynvml import ManualClock, a100, h100

LinuxTimes = namedtuple("LinuxTimes", "user nice system idle iowait irq softirq steal")  # psutil's on Linux
MacTimes = namedtuple("MacTimes", "user nice system idle")  # no iowait field
ProcTimes = namedtuple("ProcTimes", "user system children_user children_system")


class Host:
    """What psutil and time.monotonic answer, moved by the test."""

    def __init__(self, system, process):
        self.mono = 1000.0
        self.system = system
        self.process = process
        self.rss = 300 * 2**20
        self.ram = types.SimpleNamespace(total=16 * 2**30, available=10 * 2**30)
        self.fail: Exception | None = None

    def cpu_times(self):
        if self.fail is not None:
            raise self.fail
        return self.system

    def install(self, monkeypatch, sampler):
        monkeypatch.setattr(sampler_module.psutil, "cpu_times", self.cpu_times)
        monkeypatch.setattr(sampler_module.psutil, "virtual_memory", lambda: self.ram)
        clock = types.SimpleNamespace(**{name: getattr(time, name) for name in ("time", "perf_counter", "thread_time")})
        clock.monotonic = lambda: self.mono
        monkeypatch.setattr(sampler_module, "time", clock)
        sampler._proc = types.SimpleNamespace(cpu_times=lambda: self.process,
                                              memory_info=lambda: types.SimpleNamespace(rss=self.rss))


def started(monkeypatch=None, host=None, interval=3600):
    """A sampler whose thread only waits: the test takes the readings (``_tick``), as in test_readings;
    with ``host``, on scripted host readings."""
    sampler = Sampler(interval=interval)
    if host is not None:
        host.install(monkeypatch, sampler)
    sampler.start()
    assert sampler.ready.wait(10)
    return sampler


def test_host_cpu_figures_are_exact(monkeypatch, no_pynvml):
    host = Host(LinuxTimes(10, 0, 5, 80, 5, 0, 0, 0), ProcTimes(1.0, 0.5, 0, 0))
    sampler = started(monkeypatch, host)
    try:
        # 100 s of CPU time pass on the machine, 60 of them idle or waiting for I/O; this process
        # uses 3 s of CPU in 4 s of wall time
        host.system = LinuxTimes(40, 0, 15, 120, 25, 0, 0, 0)
        host.process = ProcTimes(3.0, 1.5, 0, 0)
        host.mono += 4.0
        sampler._tick()
    finally:
        sampler.stop()
    assert list(sampler.host["cpu_system"].values) == [40.0]
    assert list(sampler.host["cpu_process"].values) == [75.0]  # % of one core
    # the last reading, at stop, saw no time pass: no CPU figure, and no error
    assert list(sampler.host["rss"].values) == [300.0 * 2**20] * 2
    assert list(sampler.host["ram_used"].values) == [6.0 * 2**30] * 2
    assert sampler.errors == []
    host_figures = build_report(1, StepTimer(), sampler, FitFacts("keras", "model", "?")).host
    assert (host_figures.cpu_system_mean, host_figures.cpu_process_mean) == (40.0, 75.0)
    assert host_figures.rss_peak == 300.0 * 2**20


def test_host_cpu_without_an_iowait_field(monkeypatch, no_pynvml):
    """macOS and Windows have no iowait: idle alone is the idle time."""
    host = Host(MacTimes(10, 0, 10, 80), ProcTimes(0.0, 0.0, 0, 0))
    sampler = started(monkeypatch, host)
    try:
        host.system = MacTimes(30, 0, 20, 150)  # 100 s more, 70 of them idle
        host.mono += 1.0
        sampler._tick()
    finally:
        sampler.stop()
    assert list(sampler.host["cpu_system"].values) == [pytest.approx(30.0, rel=1e-12)]
    assert list(sampler.host["cpu_process"].values) == [0.0]
    assert sampler.errors == []


def test_the_machines_cpu_share_stays_within_0_and_100(monkeypatch, no_pynvml):
    """Counters that go back (some hypervisors' idle accounting) or a machine wholly idle."""
    host = Host(LinuxTimes(10, 0, 5, 80, 5, 0, 0, 0), ProcTimes(1.0, 0.5, 0, 0))
    sampler = started(monkeypatch, host)
    try:
        host.system = LinuxTimes(60, 0, 5, 70, 5, 0, 0, 0)  # 40 s more in all, idle 10 s less
        host.mono += 1.0
        sampler._tick()
        host.system = LinuxTimes(60, 0, 5, 110, 5, 0, 0, 0)  # 40 s more, all of them idle
        host.mono += 1.0
        sampler._tick()
    finally:
        sampler.stop()
    assert list(sampler.host["cpu_system"].values) == [100.0, 0.0]


def test_failed_readings_are_recorded_in_words_and_at_most_ten(monkeypatch, no_pynvml):
    host = Host(LinuxTimes(10, 0, 5, 80, 5, 0, 0, 0), ProcTimes(1.0, 0.5, 0, 0))
    sampler = started(monkeypatch, host)
    try:
        host.fail = PermissionError("/proc/stat is not readable")
        for _ in range(12):
            sampler._tick()
        host.fail = None
        host.mono += 1.0
        sampler._tick()  # readings come back: sampling went on
    finally:
        sampler.stop()
    assert sampler.errors == ["PermissionError: /proc/stat is not readable"] * 10
    assert sampler.ticks == 2  # the reading after the failures and the last one, at stop
    assert sampler.host["rss"].count == 2
    report = build_report(1, StepTimer(), sampler, FitFacts("keras", "model", "?"))
    assert report.sampler.errors == sampler.errors
    assert report.gpu_note == "nvidia-ml-py is not installed (pip install nvidia-ml-py)"


def test_the_reading_at_stop_is_a_full_one(fake_nvml):
    fake = fake_nvml([a100()])
    sampler = started()
    try:
        sampler._tick()  # tick 0: full (temperature, clocks, processes); the next regular one would not be
        assert sampler.ticks % SLOW_EVERY != 0
    finally:
        sampler.stop()
    track = sampler.gpus[0]
    assert (track.readings, track.full_readings) == (2, 2)
    assert track.series["temperature_c"].count == 2
    # the slow calls are made only for full readings
    assert fake.calls["nvmlDeviceGetTemperature"] == 2
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 2


def test_a_gpu_without_a_sample_buffer_is_asked_for_it_once_then_polled(fake_nvml):
    fake = fake_nvml([a100(util_gpu=55, unsupported={"nvmlDeviceGetSamples"})])
    sampler = started()
    try:
        for _ in range(4):
            sampler._tick()
    finally:
        sampler.stop()
    track = sampler.gpus[0]
    assert track.util_source == "polled"
    assert fake.calls["nvmlDeviceGetSamples"] == 1
    assert list(track.series["util"].values) == [55.0] * 5
    # ticks 0 and 2 and the last reading are full; only they ask for the slow metrics
    assert track.full_readings == fake.calls["nvmlDeviceGetTemperature"] == 3


def test_gpm_is_closed_on_every_gpu_that_has_it(fake_nvml):
    """The first GPU has no GPM: the second one's whole-window figure is still made, and every
    sample freed."""
    fake = fake_nvml([a100(), h100()])
    sampler = started()
    try:
        sampler._tick()
    finally:
        sampler.stop()
    without, with_gpm = sampler.gpus
    report = build_report(1, StepTimer(), sampler, FitFacts("keras", "model", "?"))
    assert report.gpus[0].gpm_note == without.gpm_note == "this GPU has no GPM (Hopper or newer, with a recent driver)"
    assert report.gpus[1].gpm_note is None
    assert without.gpm_note is not None and without.gpm_window is None
    assert with_gpm.gpm_note is None and with_gpm.gpm_window["sm_activity_pct"] == pytest.approx(40.0)
    assert with_gpm.gpm_first is None and with_gpm.gpm_last is None
    assert fake.gpm_live == 0


def test_a_gpm_reading_that_fails_frees_its_sample(fake_nvml):
    fake = fake_nvml([h100()])
    sampler = started()
    try:
        sampler._tick()  # a good reading
        fake.change(0, unsupported={"nvmlGpmMetricsGet"})  # samples still come; the metrics call fails
        for _ in range(2):
            sampler._tick()
    finally:
        sampler.stop()
    track = sampler.gpus[0]
    # ticks 0 read; tick 2 and the last reading failed (tick 1 is not a full one)
    assert (track.gpm_readings, track.gpm_failures) == (1, 2)
    assert fake.gpm_live == 0
    # no whole-window figure either (the same call failed at the end): the readings' mean stands in
    assert track.gpm_window is None
    assert build_report(1, StepTimer(), sampler, FitFacts("keras", "model", "?")).gpus[0].sm_activity_pct == pytest.approx(40.0)


def test_the_sampler_thread_never_keeps_python_from_exiting(no_pynvml):
    with Sampler(interval=3600) as sampler:
        assert sampler.ready.wait(10)
        thread = next(t for t in threading.enumerate() if t.name == "colab_magic-sampler")
        assert thread.daemon
    assert 0.0 <= sampler.stop_wait_s < 5.0


def test_a_fit_that_never_started_reports_nothing_measured(no_pynvml):
    """A fit that failed before Keras began training: the timer and the sampler never ran."""
    sampler = Sampler()
    sampler.stop()  # stopping a sampler that never started is harmless
    report = build_report(1, StepTimer(), sampler, FitFacts("keras", "m", "?"), error="ValueError: bad input")
    figures = report.sampler
    assert (figures.started, figures.stopped, figures.ticks) == (None, None, 0)
    assert (figures.cpu_s, figures.stop_wait_s, figures.cost_pct_of_core, figures.errors) == (0.0, 0.0, None, [])
    assert report.wall_s is None and report.epochs == [] and report.total_steps == 0
    assert report.step is None and report.gpus == [] and not report.complete


def test_a_fit_cut_in_its_second_epoch(fake_nvml):
    """The first epoch closed; the second began and was stopped before its first step ended. The
    second GPU has no energy counter and was read twice: its energy is estimated from power."""
    clock = ManualClock()
    fake_nvml([a100(power_mw=100_000),
               a100(power_mw=200_000, unsupported={"nvmlDeviceGetTotalEnergyConsumption"})], clock=clock)
    sampler = started()
    timer = StepTimer(on_epoch_end=sampler.mark, clock=clock)
    timer.plan = LoopPlan(3, 2)
    try:
        timer.fit_started(timer.plan)
        timer.epoch_started(0)
        for batch in range(2):
            timer.step_started(batch)
            clock.advance(0.5)
            timer.step_ended(batch)
        timer.epoch_ended(0)
        sampler._fill_marks()  # the energy reading at the boundary, before the clock moves on
        sampler._tick()
        timer.epoch_started(1)
        timer.step_started(0)
        clock.advance(0.25)  # KeyboardInterrupt here: no hook for this step, no epoch end, no train end
        timer.close()
    finally:
        sampler.stop()
    report = build_report(1, timer, sampler, FitFacts("keras", "model", "?", batch_size=8), error="KeyboardInterrupt")
    first, cut = report.epochs
    assert (first.time_s, first.train_s, first.steps, first.complete) == (1.0, 1.0, 2, True)
    assert first.energy_j == [pytest.approx(100.0), None]  # 1 s at 100 W; no counter, no per-epoch joules
    assert (cut.time_s, cut.train_s, cut.steps, cut.complete, cut.energy_j) == (None, None, 0, False, [None, None])
    assert report.wall_s == 1.25  # to when the report was made: the fit never reported its end
    assert (report.epochs_planned, report.steps_per_epoch) == (3, 2)
    gpu = report.gpus[1]
    assert gpu.energy_source == "estimated from power"  # two power readings are enough
    assert gpu.energy_j == pytest.approx(200.0 * (sampler.stopped - sampler.started))


def test_steps_that_took_no_measurable_time_give_no_throughput(no_pynvml):
    clock = ManualClock()
    timer = StepTimer(clock=clock)
    timer.fit_started(timer.plan)
    timer.epoch_started(0)
    for batch in range(3):  # the clock never moves: a coarse timer on a tiny model
        timer.step_started(batch)
        timer.step_ended(batch)
    timer.epoch_ended(0)
    timer.fit_ended()
    timer.close()
    sampler = Sampler()
    report = build_report(1, timer, sampler, FitFacts("keras", "model", "?", batch_size=8))
    assert report.step.median == 0.0 and report.samples_per_s is None
