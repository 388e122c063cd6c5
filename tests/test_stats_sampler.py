import os
import threading
import time

import numpy as np
import pytest

from colab_magic import nvml
from colab_magic.sampler import Sampler
from colab_magic.stats import Reservoir, Series, quantile, step_stats
from tests.fake_pynvml import a100, t4


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.95, 1.0])
def test_quantile_matches_numpy(q):
    values = sorted(np.random.default_rng(1).random(101).tolist())
    assert quantile(values, q) == pytest.approx(np.percentile(values, 100 * q))


def test_summary_of_nothing_is_none():
    assert step_stats([]) is None and quantile([], 0.5) is None


def test_reservoir_is_bounded_and_keeps_exact_mean():
    r = Reservoir(capacity=1000, seed=3)
    data = np.random.default_rng(2).exponential(size=50_000)
    for v in data:
        r.add(float(v))
    assert len(r.values) == 1000 and r.count == 50_000
    s = r.step_stats()
    assert s.mean == pytest.approx(data.mean(), rel=1e-9)
    assert s.median == pytest.approx(np.median(data), rel=0.1)  # a uniform sample of the data


def test_series_is_bounded_spans_the_run_and_keeps_exact_mean_and_peak():
    s = Series(capacity=128)
    for i in range(100_000):
        s.add(float(i), float(i % 1000))
    s.add(100_000.0, None)  # a missing metric is skipped, not recorded as zero
    assert len(s.values) < 128 and len(s.times) == len(s.values)
    assert s.count == 100_000 and s.peak == 999.0
    assert s.mean == pytest.approx(499.5)
    assert s.times[0] == 0.0 and s.times[-1] > 90_000  # coverage of the whole run, not just its start
    assert list(s.times) == sorted(s.times)


def test_sampler_memory_stays_bounded_for_a_long_run(fake_nvml):
    fake_nvml([a100(), t4()])
    sampler = Sampler(interval=3600, capacity=64)  # the thread sleeps; ticks are driven by hand
    sampler.start()
    assert sampler.ready.wait(5)
    try:
        for _ in range(3000):
            sampler._tick()
    finally:
        sampler.stop()
    series = list(sampler.host.values()) + [s for t in sampler.gpus for s in t.series.values()]
    assert all(len(s.values) <= 64 for s in series)
    assert sampler.host["cpu_process"].count >= 3000
    assert sampler.gpus[1].readings >= 3000


def test_sampler_thread_and_nvml_are_released(fake_nvml):
    fake = fake_nvml([a100()])
    with Sampler(interval=0.01) as sampler:
        assert any(t.name == "colab_magic-sampler" for t in threading.enumerate())
        assert sampler.ready.wait(5) and nvml.active()
        threading.Event().wait(0.1)
    assert not any(t.name == "colab_magic-sampler" for t in threading.enumerate())
    assert not nvml.active() and fake.initialised == 0
    assert sampler.ticks >= 3
    assert sampler.cpu_seconds >= 0 and sampler.stopped >= sampler.started
    assert len(sampler.marks) == 2 and sampler.energy_j_between(0) >= 0
    sampler.stop()  # twice is harmless


def test_sampler_records_host_cpu_of_this_process():
    with Sampler(interval=0.02) as sampler:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # keep one core busy
            sum(range(1000))
    cpu = sampler.host["cpu_process"]
    # the busy loop holds the GIL between switches, so under load the sampler gets fewer ticks in
    assert cpu.count >= 3 and cpu.mean > 30  # busy-looping: most of a core
    assert sampler.host["rss"].peak > 0 and sampler.gpus == [] and sampler.gpu_note


def test_host_cpu_readings_are_percentages_that_see_a_busy_core():
    with Sampler(interval=0.05) as sampler:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # keep one core busy
            sum(range(1000))
    system = list(sampler.host["cpu_system"].values)
    process = list(sampler.host["cpu_process"].values)
    assert len(system) >= 3 and all(0.0 <= v <= 100.0 for v in system)  # % of all cores
    assert all(v >= 0.0 for v in process)
    # one of the machine's cores is this loop: the whole machine was at least that busy, on average
    assert sum(system) / len(system) >= 100.0 / sampler.logical_cores * 0.5


def test_sampler_rejects_bad_interval():
    with pytest.raises(ValueError, match="^interval must be > 0$"):
        Sampler(interval=0)


def test_process_gpu_memory_is_this_pid_only(fake_nvml):
    fake_nvml([a100(processes=[(os.getpid(), 2**30), (99999, 5 * 2**30)])])
    with Sampler(interval=0.01) as sampler:
        threading.Event().wait(0.05)
    assert sampler.gpus[0].series["process_memory"].peak == 2**30


def test_epoch_marks_get_their_energy_from_the_sampler_thread(fake_nvml):
    fake_nvml([a100(power_mw=200_000)])
    with Sampler(interval=0.01) as sampler:
        assert sampler.ready.wait(5)
        time.sleep(0.05)
        sampler.mark()  # an epoch boundary, noted on the caller's thread
        time.sleep(0.05)
    assert len(sampler.marks) == 3
    assert all(isinstance(m[1], list) and m[1][0] is not None for m in sampler.marks)
    first = sampler.energy_j_between(0, 0, 1)
    second = sampler.energy_j_between(0, 1, 2)
    assert first > 0 and second > 0  # the fake counter grows at 200 W
    assert sampler.energy_j_between(0) == pytest.approx(first + second)
