"""A scripted fit on a fake GPU whose readings change from epoch to epoch, on a clock the test moves:
every figure in the report is known in advance, so means, percentiles, sample counts and joules are
asserted exactly. The timer, sampler, report and history are the real ones; only NVML is fake."""

import numpy as np
import pytest

from colab_magic import environment, history
from colab_magic.run_summary import RunSummary
from colab_magic.sampler import Sampler
from colab_magic.summarise import build_report
from colab_magic.timing import StepTimer
from tests.fake_pynvml import ManualClock, h100

GiB = 2**30
STEPS = 4
# One phase per epoch: what the GPU reads during it, and how long each training step takes.
PHASES = [
    dict(util_gpu=20, power_mw=100_000, memory_used=10 * GiB, step_s=0.5),
    dict(util_gpu=60, power_mw=300_000, memory_used=30 * GiB, step_s=0.75),
    dict(util_gpu=90, power_mw=250_000, memory_used=20 * GiB, step_s=0.125),
]
SAMPLE_PERIOD_US = 1_000_000 // 6  # the fake driver's utilisation buffer, as on real GPUs


def scripted_fit(fake_nvml):
    """Train 3 epochs of 4 steps by calling the timer's hooks as Keras would, with one sampler tick
    after every step and the GPU's readings changed at each epoch boundary."""
    clock = ManualClock()
    first = {k: v for k, v in PHASES[0].items() if k != "step_s"}
    fake = fake_nvml([h100(**first)], clock=clock)
    sampler = Sampler(interval=3600)  # the thread only waits; ticks are driven from here
    sampler.start()
    assert sampler.ready.wait(10)
    timer = StepTimer(on_epoch_end=sampler.mark, clock=clock)
    timer.set_params({"epochs": len(PHASES), "steps": STEPS, "verbose": 0})
    try:
        timer.on_train_begin()
        for epoch, phase in enumerate(PHASES):
            if epoch:
                fake.change(0, **{k: v for k, v in phase.items() if k != "step_s"})
            timer.on_epoch_begin(epoch)
            for batch in range(STEPS):
                timer.on_train_batch_begin(batch)
                clock.advance(phase["step_s"])
                sampler._tick()
                timer.on_train_batch_end(batch)
            timer.on_epoch_end(epoch)
            sampler._fill_marks()  # the energy reading at the boundary (the thread may beat us: same clock)
        timer.on_train_end()
        timer.close()
    finally:
        sampler.stop()
    info = {"model": "scripted", "backend": "jax", "device": "GPU:0", "batch_size": 32}
    return build_report(1, timer, sampler, info), clock


def expected_util_samples(duration_s: float) -> list[int]:
    """The driver's samples from the fit's start to its end, each with the utilisation of its phase."""
    values, start = [], 0.0
    bounds = []
    for phase in PHASES:
        end = start + STEPS * phase["step_s"]
        bounds.append((end, phase["util_gpu"]))
        start = end
    for k in range(int(duration_s * 1e6) // SAMPLE_PERIOD_US + 1):
        t = k * SAMPLE_PERIOD_US / 1e6
        values.append(next(util for end, util in bounds if t < end) if t < bounds[-1][0] else bounds[-1][1])
    return values


def test_gpu_figures_are_exact_when_readings_change(fake_nvml):
    report, _ = scripted_fit(fake_nvml)
    gpu = report.gpus[0]
    duration = sum(STEPS * p["step_s"] for p in PHASES)  # 5.5 s
    util = expected_util_samples(duration)
    assert len(util) == 34  # 6 a second over 5.5 s, the first at the start: each read exactly once
    assert gpu.util_samples == len(util)
    assert gpu.util_mean == pytest.approx(np.mean(util), abs=1e-12)
    assert gpu.util_p95 == pytest.approx(np.percentile(util, 95), abs=1e-12)
    assert gpu.util_p95 != pytest.approx(np.percentile(util, 90))  # the scenario tells p95 from p90
    # one power and memory reading per tick: 4 per epoch, and the last reading when the sampler stops
    power = [p["power_mw"] / 1000 for p in PHASES for _ in range(STEPS)] + [PHASES[-1]["power_mw"] / 1000]
    assert gpu.readings == len(power) == 13
    assert gpu.power_mean_w == pytest.approx(np.mean(power), abs=1e-9)
    assert gpu.power_mean_w != pytest.approx(max(power))
    assert gpu.memory_peak == 30 * GiB and gpu.memory_total == 80 * GiB
    assert gpu.util_mean != pytest.approx(max(util))


def test_energy_per_epoch_is_each_epochs_own(fake_nvml):
    report, _ = scripted_fit(fake_nvml)
    # joules = watts x seconds of that epoch; the fake integrates power exactly (to the mJ)
    per_epoch = [p["power_mw"] / 1000 * STEPS * p["step_s"] for p in PHASES]
    assert per_epoch == [200.0, 900.0, 125.0]
    got = [e.energy_j[0] for e in report.epochs]
    assert got == pytest.approx(per_epoch, abs=0.002)
    assert report.gpus[0].energy_j == pytest.approx(sum(per_epoch), abs=0.002)
    assert report.gpus[0].energy_source == "counter"


def test_step_and_epoch_figures_are_exact_and_survive_the_history(fake_nvml, tmp_path):
    report, _ = scripted_fit(fake_nvml)
    # The fit's first step is compilation and stays out; the rest are the phases' step times.
    steps = [p["step_s"] for p in PHASES for _ in range(STEPS)][1:]
    assert report.first_step_s == 0.5
    assert report.step.n == len(steps) == 11
    assert report.step.median == np.median(steps) == 0.5
    assert report.step.mean == pytest.approx(np.mean(steps), abs=1e-12)
    assert report.step.p90 == pytest.approx(np.percentile(steps, 90), abs=1e-12)
    assert [e.time_s for e in report.epochs] == [2.0, 3.0, 0.5]
    assert [e.step_median_s for e in report.epochs] == [0.5, 0.75, 0.125]
    assert report.total_steps == 12 and report.samples_per_s == 32 / 0.5

    run = RunSummary.from_report(report)
    assert run.epoch_mean_s == pytest.approx(5.5 / 3, abs=1e-12)  # every finished epoch, not the first
    assert run.step_p90_s == pytest.approx(np.percentile(steps, 90), abs=1e-12)
    path = tmp_path / "runs.jsonl"
    history.append(run.to_record(history.environment(environment.detect(), ["NVIDIA H100 80GB HBM3"])), path)
    records, warnings = history.read(path)
    back = RunSummary.from_record(records[0])
    assert warnings == [] and back.epoch_mean_s == run.epoch_mean_s and back.step_p90_s == run.step_p90_s
    assert back.gpu_util_mean == report.gpus[0].util_mean
