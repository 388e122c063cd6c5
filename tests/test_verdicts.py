"""The verdict rules on synthetic reports, and end to end on a real fit with a fake two-GPU NVML."""

import dataclasses

import pytest

from colab_magic.verdicts import findings
from tests import builders
from tests.builders import host, input_wait, report
from tests.fake_pynvml import a100, t4


def gpu(index, name, util):
    return builders.gpu(index, name, util)


def test_idle_gpu_among_several_is_named():
    r = report("GPU:0", [gpu(0, "H100", 93.0), gpu(1, "H100", 0.4), gpu(2, "H100", 61.0)])
    (f,) = findings(r)
    assert f.rule == "idle_gpus" and f.title == "1 of 3 GPUs sat idle: GPU 1 (H100)"
    assert "GPU 1 (H100) (0%)" in f.evidence and "GPU 0 (H100) (93%)" in f.evidence
    assert "MirroredStrategy" in f.fix


def test_busy_gpus_and_a_single_gpu_give_no_idle_verdict():
    assert findings(report("GPU:0", [gpu(0, "A", 90.0), gpu(1, "B", 40.0)])) == []
    assert findings(report("GPU:0", [gpu(0, "A", 1.0)])) == []
    assert findings(report("GPU:1", [gpu(0, "A", None), gpu(1, "B", 70.0)])) == []  # unreadable is not idle


def test_training_on_the_cpu_with_a_gpu_present():
    (f,) = findings(report("CPU:0", [gpu(0, "Tesla T4", 0.0)]))
    assert f.rule == "gpu_unused" and "GPU 0 (Tesla T4) 0% busy" in f.evidence
    assert findings(report("CPU:0", [])) == []


@pytest.mark.keras
def test_verdict_shown_after_a_real_fit(ip, fake_nvml, capsys):
    pytest.importorskip("keras")
    fake_nvml([a100(util_gpu=0), t4(util_gpu=0)])
    ip.run_cell("import numpy as np, keras\nx = np.ones((64, 4), 'float32'); y = np.ones((64, 1), 'float32')").raise_error()
    cell = "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nm.compile('sgd', 'mse')\nm.fit(x, y, epochs=1, verbose=0)"
    ip.run_cell(f"%%timed_fit --interval 0.05 --no-history -v R\n{cell}").raise_error()
    out = capsys.readouterr().out
    assert ip.user_ns["R"][0].findings[0].rule == "gpu_unused"
    assert "(1) GPU present but unused" in out and "Fix: " in out


def test_idle_gpu_named_from_a_sampled_fake_two_gpu_machine(fake_nvml):
    """The idle rule on a report built from real sampling of a fake NVML (a fit on GPU 0 of two)."""
    import time

    pytest.importorskip("keras")
    from colab_magic.fit_report import build_report
    from colab_magic.observer import FitFacts
    from colab_magic.sampler import Sampler
    from colab_magic.timing import StepTimer

    fake_nvml([a100(util_gpu=90), t4(util_gpu=0)])
    timer = StepTimer()
    timer.fit_started(timer.plan)
    with Sampler(interval=0.02) as sampler:
        assert sampler.ready.wait(5)
        time.sleep(0.2)
    rep = build_report(1, timer, sampler, FitFacts("keras", "m", "jax", device="GPU:0"))
    assert [g.util_mean for g in rep.gpus] == [90.0, 0.0]
    assert rep.findings[0].title == "1 of 2 GPUs sat idle: GPU 1 (Tesla T4)"
    assert "GPU 0 (NVIDIA A100-SXM4-40GB) (90%)" in rep.findings[0].evidence


full_gpu = builders.gpu


def timed(device="GPU:0", gpus=None, step=0.05, first=0.5, wall=100.0, spe=1, backend="tensorflow", own=None):
    return report(device, gpus if gpus is not None else [full_gpu()], step=step, first_step_s=first, wall_s=wall,
                  steps_per_execution=spe, backend=backend, framework_memory_peak=own)


def rules_of(r):
    return [f.rule for f in findings(r)]


def test_a_healthy_gpu_fit_gets_no_verdict():
    assert findings(timed()) == []


def test_throttling_names_reasons_and_share():
    g = full_gpu(clock_events={"sw_power_cap": 0.4, "gpu_idle": 0.1}, throttled_fraction=0.4, sm_clock_mean_mhz=900.0)
    (f,) = findings(timed(gpus=[g]))
    assert f.rule == "throttled" and "sw_power_cap 40% of readings" in f.evidence and "900 MHz" in f.evidence
    g.throttled_fraction = 0.05  # occasional: no verdict
    assert findings(timed(gpus=[g])) == []


def test_memory_reserved_by_tensorflow_versus_really_full():
    g = full_gpu(memory_peak=39.5 * 2**30)
    (f,) = findings(timed(gpus=[g], own=2 * 2**30))
    assert f.rule == "memory_reserved" and "set_memory_growth" in f.fix
    (f,) = findings(timed(gpus=[g], own=2 * 2**30, backend="jax"))
    assert "XLA_PYTHON_CLIENT_PREALLOCATE=false" in f.fix
    (f,) = findings(timed(gpus=[g], own=38 * 2**30))
    assert f.rule == "memory_full" and "(99%)" in f.evidence


def test_dispatch_bound_tiny_steps():
    busy_little = [full_gpu(util=10.0)]
    (f,) = findings(timed(gpus=busy_little, step=0.0013))
    assert f.rule == "dispatch_bound" and "1.30 ms" in f.evidence and "busy 10%" in f.evidence
    assert rules_of(timed(gpus=busy_little, step=0.0013, spe=32)) == []  # already many steps per call
    assert rules_of(timed(gpus=[full_gpu(util=95.0)], step=0.0013)) == []  # tiny but the GPU is saturated
    assert rules_of(timed(device="CPU:0", gpus=[], step=0.0008)) == ["dispatch_bound"]


def test_compile_dominates_a_short_run_only():
    assert rules_of(timed(first=4.0, wall=6.0)) == ["compile_dominates"]
    assert rules_of(timed(first=4.0, wall=600.0)) == []


def test_at_most_three_in_order_of_importance():
    g = full_gpu(util=1.0, memory_peak=39.9 * 2**30, clock_events={"hw_thermal": 1.0}, throttled_fraction=1.0)
    r = timed(device="CPU:0", gpus=[g], step=0.001, first=5.0, wall=6.0, own=38 * 2**30)
    assert rules_of(r) == ["gpu_unused", "throttled", "memory_full"]


def test_input_bound_from_the_input_check_and_from_an_idle_gpu_beside_a_busy_host():
    r = dataclasses.replace(timed(), input_wait=input_wait(0.37))
    (f,) = findings(r)
    assert f.title == "Highly input-bound: 37% of each step waits for data" and "19.0 ms with one batch" in f.evidence
    r.input_wait.wait_share = 0.08
    assert findings(r)[0].title.startswith("Moderately input-bound")
    r.input_wait.wait_share = 0.01
    assert findings(r) == []
    r = dataclasses.replace(timed(gpus=[full_gpu(util=20.0)], step=0.040), host=host(cpu_process_mean=98.0))
    (f,) = findings(r)
    assert f.title == "Likely input-bound: the GPU idles while the host is busy" and "busy 20%" in f.evidence
    r = dataclasses.replace(r, host=host(cpu_process_mean=30.0))  # a quiet host: not the input pipeline
    assert findings(r) == []
