"""A scripted fit on a fake GPU whose readings change from epoch to epoch, on a clock the test moves:
every figure in the report is known in advance, so means, percentiles, sample counts and joules are
asserted exactly. The timer, sampler, report and history are the real ones; only NVML is fake."""

import json

import numpy as np
import pytest

from colab_magic import environment, history
from colab_magic.fit_report import build_report
from colab_magic.intervals import mean_interval
from colab_magic.observer import FitFacts, LoopPlan
from colab_magic.run_summary import RunSummary
from colab_magic.sampler import Sampler
from colab_magic.timing import StepTimer
from tests.fake_pynvml import ManualClock, h100

GiB = 2**30
STEPS = 4
# One phase per epoch: what the GPU reads during it, and how long each training step takes.
SM, OCC, TENSOR, DRAM = 2, 3, 5, 10  # NVML's GPM metric ids


def gpm(sm, tensor):
    return {SM: sm, OCC: sm / 2, TENSOR: tensor, DRAM: 30.0}


PHASES = [
    dict(util_gpu=20, power_mw=100_000, memory_used=10 * GiB, gpm=gpm(40.0, 0.0), step_s=0.5),
    dict(util_gpu=60, power_mw=300_000, memory_used=30 * GiB, gpm=gpm(80.0, 50.0), step_s=0.75),
    dict(util_gpu=90, power_mw=250_000, memory_used=20 * GiB, gpm=gpm(10.0, 5.0), step_s=0.125),
]
SAMPLE_PERIOD_US = 1_000_000 // 6  # the fake driver's utilisation buffer, as on real GPUs


def scripted_fit(fake_nvml, info=None, error=None):
    """Train 3 epochs of 4 steps by calling the timer's hooks as Keras would, with one sampler tick
    after every step and the GPU's readings changed at each epoch boundary."""
    clock = ManualClock()
    first = {k: v for k, v in PHASES[0].items() if k != "step_s"}
    fake = fake_nvml([h100(**first)], clock=clock)
    sampler = Sampler(interval=3600)  # the thread only waits; ticks are driven from here
    sampler.start()
    assert sampler.ready.wait(10)
    timer = StepTimer(on_epoch_end=sampler.mark, clock=clock)
    timer.plan = LoopPlan(len(PHASES), STEPS)
    try:
        timer.fit_started(timer.plan)
        for epoch, phase in enumerate(PHASES):
            if epoch:
                fake.change(0, **{k: v for k, v in phase.items() if k != "step_s"})
            timer.epoch_started(epoch)
            for batch in range(STEPS):
                timer.step_started(batch)
                clock.advance(phase["step_s"])
                sampler._tick()
                timer.step_ended(batch)
            timer.epoch_ended(epoch)
            sampler._fill_marks()  # the energy reading at the boundary (the thread may beat us: same clock)
        timer.fit_ended()
        timer.close()
    finally:
        sampler.stop()
    if info is None:
        info = FitFacts("keras", "scripted", "jax", device="GPU:0", batch_size=32)
    return build_report(1, timer, sampler, info, error=error), sampler


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


def test_every_gpu_epoch_and_sampler_figure_of_the_scripted_fit(fake_nvml):
    """The whole GPU summary, field by field: a figure computed from the wrong series or reading
    shows here."""
    report, sampler = scripted_fit(fake_nvml)
    gpu = report.gpus[0].to_dict()
    util = expected_util_samples(5.5)
    full_ticks = 7  # ticks 0, 2, 4 ... 10 and the last one read the slow metrics (SLOW_EVERY = 2)
    expected = {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "util_source": "driver samples", "util_samples": 34,
        "memory_peak": 30 * GiB, "memory_total": 80 * GiB, "process_memory_peak": 0.0, "power_limit_w": 700.0,
        "energy_source": "counter", "temperature_max_c": 61.0, "sm_clock_mean_mhz": 1410.0, "clock_events": {},
        "throttled_fraction": 0.0, "readings": 13, "gaps": [], "gap_s": 0, "gpm_note": None,
        "gpm_readings": full_ticks, "gpm_failures": 0,
        "dram_bw_pct": 30.0,
    }
    assert {k: gpu[k] for k in expected} == expected
    # GPM over the whole fit: each phase's figure weighted by its time (2 s, 3 s, 0.5 s of 5.5 s)
    assert gpu["sm_activity_pct"] == pytest.approx((2 * 40 + 3 * 80 + 0.5 * 10) / 5.5)
    assert gpu["sm_occupancy_pct"] == pytest.approx((2 * 20 + 3 * 40 + 0.5 * 5) / 5.5)
    assert gpu["tensor_activity_pct"] == pytest.approx((3 * 50 + 0.5 * 5) / 5.5)
    # one reading per full tick, each since the previous one: (0, 0.5], (0.5, 1.5], (1.5, 2.75] ...
    ends = [0.0, 0.5, 1.5, 2.75, 4.25, 5.125, 5.375, 5.5]

    def sm_at(t):
        return 40.0 if t < 2 else 80.0 if t < 5 else 10.0

    def mean_sm(a, b, n=10_000):  # numerically, as a check on the hand-made expectation
        return sum(sm_at(a + (b - a) * (i + 0.5) / n) for i in range(n)) / n

    readings = [v for _, v in report.timeline["gpus"][0]["sm_activity_pct"]]
    assert readings == pytest.approx([mean_sm(a, b) for a, b in zip(ends, ends[1:])], abs=0.01)
    assert readings[2] == pytest.approx((0.5 * 40 + 0.75 * 80) / 1.25)
    assert gpu["util_mean"] == pytest.approx(np.mean(util)) and gpu["energy_j"] == pytest.approx(1225.0, abs=0.002)
    assert report.gpus[0].label == "GPU 0 (NVIDIA H100 80GB HBM3)"
    epochs = [(e.epoch, e.steps, e.complete, e.val_s, e.train_s, e.steps_s) for e in report.epochs]
    assert epochs == [(1, 4, True, 0.0, 2.0, 2.0), (2, 4, True, 0.0, 3.0, 3.0), (3, 4, True, 0.0, 0.5, 0.5)]
    assert [e.outside_steps_s for e in report.epochs] == [0.0, 0.0, 0.0]
    assert (report.index, report.model, report.backend, report.device, report.batch_size) == (1, "scripted", "jax", "GPU:0", 32)
    assert (report.epochs_planned, report.steps_per_epoch, report.steps_per_execution) == (3, 4, 1)
    assert report.complete and report.error is None and report.wall_s == 5.5 and report.gpu_note is None
    s = report.sampler
    assert (s.interval_s, s.ticks, s.errors) == (3600, 13, [])
    assert (s.started, s.stopped, s.cpu_s, s.stop_wait_s) == (sampler.started, sampler.stopped, sampler.cpu_seconds,
                                                              sampler.stop_wait_s)
    assert s.stopped > s.started and s.cpu_s > 0 and s.stop_wait_s > 0
    assert s.cost_pct_of_core == pytest.approx(100 * sampler.cpu_seconds / (sampler.stopped - sampler.started))
    assert report.notes == []
    timeline = report.timeline
    assert len(timeline["epoch_ends"]) == 3 and len(timeline["gpus"]) == 1
    assert [v for _, v in timeline["gpus"][0]["power_w"]] == [100.0] * 4 + [300.0] * 4 + [250.0] * 5
    assert [v for _, v in timeline["gpus"][0]["util"]] == util
    assert set(timeline["host"]) == {"cpu_system", "cpu_process", "rss", "own", "ram_used"}
    assert len(timeline["host"]["rss"]) == 13 and all(v > 0 for _, v in timeline["host"]["rss"])
    # the process's own memory (resident less shared pages): within its RSS, and within the machine's used
    # memory, which leaves out the page cache that shared libraries sit in (RSS once stood above it)
    own = dict(timeline["host"]["own"])
    assert all(0 < own[t] <= v for t, v in timeline["host"]["rss"])
    assert all(own[t] <= v for t, v in timeline["host"]["ram_used"])
    assert 0 < report.host.own_peak <= min(report.host.rss_peak, report.host.ram_used_peak)


def test_a_run_summary_and_its_record_carry_every_figure(fake_nvml):
    report, _ = scripted_fit(fake_nvml)
    steps = [p["step_s"] for p in PHASES for _ in range(STEPS)][1:]
    run = RunSummary.from_report(report)
    got = {k: v for k, v in run.to_dict().items() if k not in ("report", "signature", "env", "cpu_util_mean")}
    assert got == {
        "device": "GPU:0", "kind": "fit", "loop": "keras", "model": "scripted", "name": "NVIDIA H100 80GB HBM3", "backend": "jax",
        "batch_size": 32, "steps_per_epoch": 4, "complete": True, "total_steps": 12, "step_median_s": 0.5,
        "step_p90_s": pytest.approx(np.percentile(steps, 90)), "step_mean_s": pytest.approx(np.mean(steps)),
        "first_step_s": 0.5, "epoch_mean_s": pytest.approx(5.5 / 3), "projected_epoch_s": None,
        "samples_per_s": 64.0, "gpu_util_mean": report.gpus[0].util_mean, "memory_peak": 30 * GiB,
        "speedup": None, "error": None, "source": "measured now", "time": None, "id": None,
        "recorded_signature_id": None, "util_mean": report.gpus[0].util_mean,
        "input_wait_share": None, "cluster": None,  # no input check ran; a single process
        # a fit's own mean has an interval (its steps in 10 blocks; tests/test_intervals.py has the arithmetic)
        "step_mean_interval_s": pytest.approx(list(mean_interval(steps, blocks=10, predict=False))),
        # what only a trial (--compare, --whatif) has
        "variant": None, "timed_s": None, "timed_steps": None, "projected_epoch_interval_s": None,
        "speedup_interval": None, "trial_s": None,
    }
    assert run.cpu_util_mean == report.host.cpu_system_mean
    cpu = RunSummary.from_report(report, device="CPU:0")  # where a comparison's clone ran
    assert (cpu.name, cpu.gpu_util_mean, cpu.memory_peak) == ("CPU", None, report.host.rss_peak)
    assert cpu.util_mean == report.host.cpu_system_mean and RunSummary.from_report(report, kind="compare").epoch_mean_s is None

    env = history.environment(environment.detect(), ["NVIDIA H100 80GB HBM3"])
    record = run.to_record(env)
    assert list(record) == list(__import__("colab_magic.run_summary", fromlist=["x"]).RECORD_KEYS)
    assert len(record["id"]) == 8 and record["time"].endswith("+00:00") and record["env"] == env
    assert record["device_name"] == "NVIDIA H100 80GB HBM3" and record["signature"] is None
    back = RunSummary.from_record(json.loads(json.dumps(record)))
    for key in ("device", "kind", "loop", "model", "backend", "batch_size", "steps_per_epoch", "complete", "total_steps",
                "step_median_s", "step_p90_s", "step_mean_s", "first_step_s", "epoch_mean_s", "projected_epoch_s",
                "samples_per_s", "gpu_util_mean", "cpu_util_mean", "time", "id", "input_wait_share", "cluster"):
        assert getattr(back, key) == record[key], key
    assert back.step_mean_interval_s == tuple(record["step_mean_interval_s"]) == run.step_mean_interval_s
    assert back.name == "NVIDIA H100 80GB HBM3" and back.env == env and back.report is None
    assert back.source == f"history: {env['runtime']} on {env['host']}, {record['time']}"
    assert back.recorded_signature_id == record["signature_id"] == run.signature_id
    # an old record lacking most fields: they stay None, nothing invented
    old = RunSummary.from_record({"device": "CPU:0", "kind": "fit", "step_median_s": 0.01})
    assert (old.step_mean_s, old.epoch_mean_s, old.model, old.env, old.source) == (None, None, None, {}, "history: ? on ?, ?")
    assert old.epoch_s(100) == (pytest.approx(1.0), "projected")


def test_polled_utilisation_and_a_gpu_lost_for_a_while(fake_nvml):
    """No driver sample buffer: utilisation is polled on every tick. A GPU that stops answering leaves
    one gap, closed when it answers again, and no readings in between."""
    from colab_magic.sampler import SLOW_EVERY
    from tests.fake_pynvml import t4

    clock = ManualClock()
    fake = fake_nvml([t4(util_gpu=55, unsupported={"nvmlDeviceGetSamples"})], clock=clock)
    sampler = Sampler(interval=3600)
    sampler.start()
    assert sampler.ready.wait(10)
    script = [("tick", 55)] * 3 + [("util", 65)] + [("tick", 65)] * 2 + [("lost", True)] + [("tick", None)] * 3 \
        + [("lost", False)] + [("tick", 65)] * 2
    try:
        for what, value in script:
            if what == "util":
                fake.change(0, util_gpu=value)
            elif what == "lost":
                fake.change(0, lost=value)
            else:
                clock.advance(0.5)
                sampler._tick()
    finally:
        sampler.stop()
    track = sampler.gpus[0]
    assert track.util_source == "polled"
    # 7 answered ticks and the last reading at stop; the 3 ticks while lost read nothing
    assert list(track.series["util"].values) == [55.0] * 3 + [65.0] * 2 + [65.0] * 3
    assert track.readings == 8 and sampler.ticks == 11  # 10 and the last
    # the slow metrics on every SLOW_EVERY-th tick that answered, and on the last reading
    answered = [n for n in range(10) if not 5 <= n <= 7]
    assert track.full_readings == sum(1 for n in answered if n % SLOW_EVERY == 0) + 1
    assert len(track.series["temperature_c"].values) == track.full_readings
    (gap,) = track.gaps
    assert gap[0] is not None and gap[1] is not None and gap[1] >= gap[0]


def test_notes_say_what_went_wrong_in_exact_words():
    from colab_magic.fit_report import _notes
    from tests import builders

    sampler = Sampler(interval=1.0)  # never started: only its error list is read
    quiet = builders.report(device="GPU:0", gpus=[builders.gpu(readings=0)], step=0.01)
    gaps = builders.report(device="GPU:0", gpus=[builders.gpu(1, gaps=[[1.0, 2.5], [4.0, 4.25]], gap_s=1.75)], step=0.01)
    assert _notes(quiet, sampler) == ["GPU 0 reports no metrics through NVML (every reading was refused)."]
    assert _notes(gaps, sampler) == [
        "GPU 1: no readings for 1.8 s in 2 gap(s) (NVML stopped answering); training went on."]
    sampler.errors = ["RuntimeError: a", "OSError: b", "ValueError: c", "KeyError: d"]
    no_steps = builders.report(step=None, total_steps=0)
    assert _notes(no_steps, sampler) == [
        "Sampler errors: RuntimeError: a; OSError: b; ValueError: c",
        "No training step ran (epochs or steps_per_epoch was 0, or the data was empty).",
    ]
    sampler.errors = []
    one = builders.report(step=None, total_steps=1)
    assert _notes(one, sampler) == [
        "Only one execution ran: no steady-state step time (the first step includes compilation)."]
    assert _notes(builders.report(step=None, total_steps=1, complete=False), sampler) == []
    assert _notes(builders.report(step=0.01), sampler) == []


def test_throttling_estimated_energy_process_memory_and_failing_gpm(fake_nvml):
    """A GPU without an energy counter (energy from mean power x time), throttled for part of the
    run, this process holding 1 GiB of it, and GPM that stops answering halfway."""
    import os

    from colab_magic.fit_report import _gpu
    from colab_magic.sampler import SLOW_EVERY

    clock = ManualClock()
    gpu = h100(power_mw=200_000, processes=[(os.getpid(), GiB), (1, 5 * GiB)],
               unsupported={"nvmlDeviceGetTotalEnergyConsumption"})
    fake = fake_nvml([gpu], clock=clock)
    sampler = Sampler(interval=3600)
    sampler.start()
    assert sampler.ready.wait(10)
    try:
        for n in range(8):
            if n == 2:
                fake.change(0, clock_events=0x020 | 0x001)  # sw_thermal (throttling) and gpu_idle (not)
            if n == 6:
                fake.change(0, clock_events=0, gpm_fail=True)
            clock.advance(0.5)
            sampler._tick()
    finally:
        sampler.stop()
    track = sampler.gpus[0]
    full = [n for n in range(8) if n % SLOW_EVERY == 0] + ["last"]  # ticks 0, 2, 4, 6 and the last reading
    assert track.full_readings == len(full) == 5
    assert track.clock_events == {"sw_thermal": 2, "gpu_idle": 2}  # ticks 2 and 4 of the full ones
    assert (track.gpm_readings, track.gpm_failures) == (3, 2)  # ticks 0, 2, 4 read; 6 and the last failed
    summary = _gpu(sampler, 0, track)
    assert summary.clock_events == {"gpu_idle": 2 / 5, "sw_thermal": 2 / 5}
    assert summary.throttled_fraction == 2 / 5 and summary.throttling == {"sw_thermal": 2 / 5}
    assert summary.energy_source == "estimated from power"
    assert summary.energy_j == pytest.approx(200.0 * (sampler.stopped - sampler.started))
    assert summary.process_memory_peak == GiB  # this process only, not the other one's 5 GiB
    assert (summary.gpm_readings, summary.gpm_failures, summary.gpm_note) == (3, 2, None)
    # the whole-window GPM figure spans the first and the last good sample
    assert summary.sm_activity_pct == pytest.approx(40.0)
    assert fake.gpm_live == 0  # every GPM sample freed, the failed ones too
    times = [t for t, _ in sampler.gpus[0].series["util"].points()]
    assert times[0] == pytest.approx(clock.now - 4.0, abs=1e-3)  # driver timestamps (microseconds) as seconds
    assert times[1] - times[0] == pytest.approx(1 / 6, abs=1e-5)


def test_a_gap_is_placed_in_fit_time(fake_nvml):
    from colab_magic.fit_report import _gpu

    clock = ManualClock()
    fake = fake_nvml([h100()], clock=clock)
    sampler = Sampler(interval=3600)
    sampler.start()
    assert sampler.ready.wait(10)
    try:
        sampler._tick()
        fake.change(0, lost=True)
        sampler._tick()
        sampler._tick()  # still lost: the same gap
        fake.change(0, lost=False)
        sampler._tick()
        fake.change(0, lost=True)
        sampler._tick()  # lost again at the end: a gap left open until the fit's end
    finally:
        sampler.stop()
    track = sampler.gpus[0]
    assert len(track.gaps) == 2 and track.gaps[0][1] is not None and track.gaps[1][1] is None
    summary = _gpu(sampler, 0, track)
    (a, b), (c, d) = summary.gaps
    assert (a, b) == (track.gaps[0][0] - sampler.started, track.gaps[0][1] - sampler.started)
    assert (c, d) == (track.gaps[1][0] - sampler.started, sampler.stopped - sampler.started)
    assert summary.gap_s == pytest.approx((b - a) + (d - c)) and 0 <= a <= b <= c <= d


def test_energy_between_marks_and_where_it_cannot_be_had():
    sampler = Sampler(interval=1.0)  # never started: its marks are set here as the thread would
    assert sampler.energy_j_between(0) is None  # fewer than two marks
    sampler.marks = [[0.0, [1000.0, None]], [1.0, [3000.0, 5.0]], [2.0, [6000.0, 9.0]]]
    assert sampler.energy_j_between(0) == 5.0 and sampler.energy_j_between(0, 1, 2) == 3.0
    assert sampler.energy_j_between(1) is None  # GPU 1's counter was unread at the start
    assert sampler.energy_j_between(2) is None  # no such GPU
    sampler.marks = [[0.0, []], [1.0, []]]  # no GPU at all
    assert sampler.energy_j_between(0) is None
    sampler.marks = [[0.0, [1.0]], [1.0, []]]
    assert sampler.energy_j_between(0) is None


def test_idle_clock_events_are_not_throttling_and_no_energy_without_readings(fake_nvml):
    from colab_magic.fit_report import _gpu

    clock = ManualClock()
    fake_nvml([h100(clock_events=0x001, unsupported={"nvmlDeviceGetTotalEnergyConsumption"})], clock=clock)
    sampler = Sampler(interval=3600)
    sampler.start()
    assert sampler.ready.wait(10)
    sampler.stop()  # only the last reading: one power reading, too few to estimate energy from
    summary = _gpu(sampler, 0, sampler.gpus[0])
    assert summary.clock_events == {"gpu_idle": 1.0} and summary.throttled_fraction == 0.0
    assert summary.energy_j is None and summary.energy_source is None


def test_the_report_takes_the_hosts_figures_the_timeline_and_what_the_fit_told_it(fake_nvml):
    from colab_magic.parts import ModelSignature

    signature = ModelSignature(["Dense"], 10, [None, 4])
    report, sampler = scripted_fit(fake_nvml, info=FitFacts("keras", "model", "?", device="GPU:0", signature=signature,
                                                             batch_note="unknown: a generator"))
    assert (report.model, report.backend, report.batch_size) == ("model", "?", None)  # what the fit did not say
    assert report.signature is signature and report.batch_note == "unknown: a generator"
    assert report.samples_per_s is None and report.steps_per_execution == 1 and report.framework_memory_peak is None
    h, host = sampler.host, report.host
    assert (host.cpu_system_mean, host.cpu_process_mean, host.rss_peak, host.ram_used_peak) == (
        h["cpu_system"].mean, h["cpu_process"].mean, h["rss"].peak, h["ram_used"].peak)
    assert (host.cpu_system_p95, host.cpu_process_p95) == (h["cpu_system"].quantile(0.95), h["cpu_process"].quantile(0.95))
    assert (host.ram_total, host.logical_cores) == (sampler.ram_total, sampler.logical_cores)
    import psutil

    assert (host.ram_total, host.logical_cores) == (psutil.virtual_memory().total, psutil.cpu_count())
    assert host.rss_peak > 0 and host.ram_total > host.ram_used_peak > 0 and host.logical_cores >= 1
    start = sampler.started
    assert report.timeline["host"]["rss"] == [[round(t - start, 4), v] for t, v in h["rss"].points()]
    assert report.timeline["epoch_ends"] == [round(t - start, 4) for t, _ in sampler.marks[1:-1]]
    assert all(0 < t < 60 for t in report.timeline["epoch_ends"])  # seconds into the fit, to 0.1 ms
    assert report.sampler.errors == [] and report.sampler.errors is not sampler.errors


def test_why_gpm_or_a_gpu_is_missing(fake_nvml):
    from colab_magic import nvml
    from tests.fake_pynvml import a100

    def opened(gpus):
        fake_nvml(gpus)
        sampler = Sampler(interval=3600)
        sampler.start()
        assert sampler.ready.wait(10)
        sampler.stop()
        return sampler

    assert opened([]).gpu_note == "NVML found no NVIDIA GPU"
    older = opened([a100()])
    with nvml.session():
        assert older.gpus[0].gpm_note == nvml.gpm_unavailable(0) and "no GPM" in older.gpus[0].gpm_note
    failing = opened([h100(gpm_fail=True)])
    assert failing.gpus[0].gpm_note == "the first GPM sample failed"
    assert opened([h100()]).gpus[0].gpm_note is None


def test_driver_samples_from_before_the_fit_are_left_out(fake_nvml):
    import time

    gpu = h100(util_gpu=50)
    gpu.created -= 5.0  # the driver's buffer holds five seconds from before the fit
    fake_nvml([gpu])
    sampler = Sampler(interval=3600)
    sampler.start()
    assert sampler.ready.wait(10)
    time.sleep(0.4)
    sampler.stop()
    times = [t for t, _ in sampler.gpus[0].series["util"].points()]
    assert times and all(t > sampler.started for t in times)
    assert len(times) <= (sampler.stopped - sampler.started) * 6 + 1  # 6 a second, only while it ran


def test_the_report_passes_on_what_the_fit_reported(fake_nvml):
    report, _ = scripted_fit(fake_nvml, info=FitFacts("keras", "model", "?", device="GPU:0", batch_size=32, steps_per_execution=4,
                                                       framework_memory_peak=5 * GiB), error="KeyboardInterrupt")
    assert (report.steps_per_execution, report.framework_memory_peak) == (4, 5 * GiB)
    assert report.complete is False and report.error == "KeyboardInterrupt"
    assert report.samples_per_s == 64.0  # batch / median step
