"""Exact statistics, and every verdict threshold just below and just above its boundary. The
thresholds are written out as docs/timed_fit.md documents them (not read from the module's constants), so
that a changed threshold fails here."""

import math

import pytest

from colab_magic.stats import Reservoir, Series, quantile, step_stats
from colab_magic.verdicts import findings
from tests import builders


def test_percentiles_interpolate_between_values():
    s = step_stats([4.0, 1.0, 3.0, 2.0])
    assert (s.n, s.mean, s.median, s.min, s.max) == (4, 2.5, 2.5, 1.0, 4.0)
    assert s.p10 == pytest.approx(1.3) and s.p90 == pytest.approx(3.7) and s.p95 == pytest.approx(3.85)
    assert quantile([10.0, 20.0], 0.25) == pytest.approx(12.5)


def test_reservoir_keeps_a_uniform_sample_of_a_changing_stream():
    # 0s then 1s: a slot drawn from the capacity instead of the count would keep mostly the late 1s
    r = Reservoir(capacity=1000, seed=7)
    for value in [0.0] * 50_000 + [1.0] * 50_000:
        r.add(value)
    sample_mean = sum(r.values) / len(r.values)
    assert r.count == 100_000 and r.total == 50_000.0
    assert 0.45 <= sample_mean <= 0.55


def test_series_mean_and_peak_are_exact_while_decimating():
    s = Series(capacity=64)
    values = [float((i * 37) % 101) for i in range(5000)]
    for i, v in enumerate(values):
        s.add(float(i), v)
    assert s.count == 5000 and s.mean == pytest.approx(sum(values) / 5000) and s.peak == max(values)
    assert len(s.values) <= 64


def rules(report):
    return [f.rule for f in findings(report)]


def gpu(**kw):
    return builders.gpu(**kw)


def report(device="GPU:0", gpus=None, step=0.05, **kw):
    return builders.report(device, [gpu()] if gpus is None else gpus, step=step, compute_dtype="float16", **kw)


@pytest.mark.parametrize("other_util, fires", [(4.99, True), (5.0, False)])
def test_idle_gpu_threshold(other_util, fires):
    r = report(gpus=[gpu(index=0, util=90.0), gpu(index=1, util=other_util)])
    assert ("idle_gpus" in rules(r)) is fires


@pytest.mark.parametrize("share, fires", [(0.10, True), (0.099, False)])
def test_throttled_threshold(share, fires):
    r = report(gpus=[gpu(clock_events={"hw_thermal": share}, throttled_fraction=share)])
    assert ("throttled" in rules(r)) is fires


@pytest.mark.parametrize("ratio, fires", [(0.95, True), (0.949, False)])
def test_memory_full_threshold(ratio, fires):
    total = 40 * 2**30
    r = report(gpus=[gpu(memory_peak=ratio * total, memory_total=total)])
    assert ("memory_full" in rules(r)) is fires


@pytest.mark.parametrize("own_share, rule", [(0.4999, "memory_reserved"), (0.5, "memory_full")])
def test_reserved_up_front_threshold(own_share, rule):
    total = 40 * 2**30
    peak = 0.99 * total
    r = report(gpus=[gpu(memory_peak=peak, memory_total=total)], framework_memory_peak=math.ceil(own_share * peak))
    assert rule in rules(r)


@pytest.mark.parametrize("step, util, fires", [
    (0.002999, 49.9, True), (0.003, 49.9, False), (0.001, 50.0, False),
])
def test_dispatch_bound_thresholds(step, util, fires):
    r = report(gpus=[gpu(util=util)], step=step)
    assert ("dispatch_bound" in rules(r)) is fires


@pytest.mark.parametrize("gpu_util, cpu, fires", [(49.9, 80.0, True), (50.0, 80.0, False), (49.9, 79.9, False)])
def test_likely_input_bound_thresholds(gpu_util, cpu, fires):
    r = report(gpus=[gpu(util=gpu_util)], host=builders.host(cpu_process_mean=cpu))
    assert ("input_bound" in rules(r)) is fires


@pytest.mark.parametrize("share, title", [
    (0.20, "Highly"), (0.199, "Moderately"), (0.05, "Moderately"), (0.049, None),
])
def test_measured_input_wait_thresholds(share, title):
    r = report(input_wait=builders.input_wait(share))
    found = [f for f in findings(r) if f.rule == "input_bound"]
    assert (found[0].title.split()[0] if found else None) == title


@pytest.mark.parametrize("low, title", [
    (0.20, "Highly"), (0.199, "Moderately"), (0.05, "Moderately"), (0.049, None),
])
def test_measured_input_wait_thresholds_apply_to_the_low_end(low, title):
    # the same point estimate each time (35%): only the interval's low end moves the verdict
    r = report(input_wait=builders.input_wait(0.35, interval=(low, 0.5)))
    found = [f for f in findings(r) if f.rule == "input_bound"]
    assert (found[0].title.split()[0] if found else None) == title


@pytest.mark.parametrize("first, wall, fires", [
    (3.0, 10.0, True), (2.99, 10.0, False), (30.0, 60.0, True), (30.0, 60.01, False),
])
def test_compile_dominates_thresholds(first, wall, fires):
    r = report(first_step_s=first, wall_s=wall)
    assert ("compile_dominates" in rules(r)) is fires
