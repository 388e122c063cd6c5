"""The verdicts' edges that tests/test_thresholds.py does not reach: the other side of each
condition, missing readings, and odd device layouts."""

import dataclasses

from colab_magic import verdicts
from colab_magic.run_summary import Comparison
from tests import builders as b

GiB = 2**30


def test_sms_idle_edges():
    def rule(util, sm):
        return verdicts.sms_idle(b.report(device="GPU:0", gpus=[b.gpu(util=util, sm_activity_pct=sm, sm_occupancy_pct=None)],
                                          step=0.02))
    assert rule(50.0, 20.0).evidence.endswith("SMs were busy")  # kernels half the time: counts; no occupancy read
    assert rule(49.9, 20.0) is None and rule(40.0, 60.0) is None  # either condition alone is not enough
    assert rule(80.0, 50.0) is None and rule(80.0, 49.9) is not None


def test_tensor_cores_idle_edges():
    def rule(util, tensor=None, name="NVIDIA H100 80GB HBM3", dtype="float32"):
        return verdicts.tensor_cores_idle(b.report(device="GPU:0", gpus=[b.gpu(name=name, util=util, tensor_activity_pct=tensor)],
                                                   step=0.02, compute_dtype=dtype))
    assert rule(20.0, 0.5) is not None and rule(19.9, 0.5) is None  # busy enough at 20%
    assert rule(60.0, 1.0) is None and rule(60.0, 0.99) is not None  # 1% tensor activity is use
    assert rule(None, 0.5) is None and rule(10.0, 0.5) is None
    assert rule(60.0, name="Tesla T4", dtype="float16") is None  # already mixed precision
    assert rule(60.0, name="Tesla T4") is not None


def test_likely_input_bound_edges():
    def rule(util, step, cpu=90.0):
        return verdicts.input_bound(b.report(device="GPU:0", gpus=[b.gpu(util=util)], step=step,
                                             host=b.host(cpu_process_mean=cpu)))
    assert rule(30.0, 0.003) is not None and rule(30.0, 0.0029) is None  # tiny steps are dispatch's, not input's
    assert rule(None, 0.02) is None and rule(30.0, 0.02, cpu=None) is None


def test_memory_edges():
    def rule(gpus, own=None):
        return verdicts.memory(b.report(device="GPU:0", gpus=gpus, step=0.02, framework_memory_peak=own))
    full = b.gpu(1, "T4", memory_peak=39.5 * GiB)
    assert rule([b.gpu(0, memory_peak=None), full]).rule == "memory_full"  # an unread GPU is skipped, the next seen
    assert rule([b.gpu(0, memory_peak=GiB), full]).evidence == "peak 39.5 of 40.0 GiB (99%)"
    assert rule([full], own=39.5 * GiB / 2).rule == "memory_full"  # half the peak is the model's own use
    assert rule([full], own=39.5 * GiB / 2 - 1).rule == "memory_reserved"


def test_dispatch_bound_and_idle_gpu_edges():
    assert verdicts.dispatch_bound(b.report(step=0.001, steps_per_execution=2)) is None
    assert verdicts.dispatch_bound(b.report(step=0.001, batch_size=None)).evidence == \
        "median step 1.00 ms, one step per call"  # no batch known: none said (it once read "at batch ?")
    two_idle = [b.gpu(0, util=1.0), b.gpu(1, "T4", util=1.0)]
    assert verdicts.idle_gpus(b.report(device="CPU:0", gpus=two_idle, step=0.02)) is None  # gpu_unused says it
    elsewhere = verdicts.idle_gpus(b.report(device="GPU:3", gpus=two_idle, step=0.02))  # the fit's GPU not read
    assert elsewhere.title == "2 of 2 GPUs sat idle: GPU 0 (A100), GPU 1 (T4)"
    assert elsewhere.evidence == "mean utilisation GPU 0 (A100) (1%), GPU 1 (T4) (1%), while the fit ran on GPU:3"
    unread = verdicts.idle_gpus(b.report(device="GPU:0", gpus=[b.gpu(0, util=None), b.gpu(1, "T4", util=1.0)], step=0.02))
    assert unread.evidence.endswith("while the fit ran on GPU:0")


def test_gpu_unused_lists_every_gpu_and_says_when_none_was_read():
    report = b.report(device="CPU:0", gpus=[b.gpu(0, util=2.0), b.gpu(1, "T4", util=3.0)], step=0.02)
    assert verdicts.gpu_unused(report).evidence == "weights on CPU:0; GPU 0 (A100) 2% busy, GPU 1 (T4) 3% busy"
    unread = b.report(device="CPU:0", gpus=[b.gpu(util=None)], step=0.02)
    assert verdicts.gpu_unused(unread).evidence == "weights on CPU:0; GPU utilisation not readable"


def test_throttling_evidence_for_several_gpus_and_reasons():
    hot = b.gpu(0, clock_events={"sw_thermal": 0.5, "hw_slowdown": 0.25}, throttled_fraction=0.5, sm_clock_mean_mhz=None)
    capped = b.gpu(1, "T4", clock_events={"sw_power_cap": 0.2}, throttled_fraction=0.2)
    finding = verdicts.throttled(b.report(device="GPU:0", gpus=[hot, capped], step=0.02))
    assert finding.evidence == ("GPU 0 (A100): sw_thermal 50%, hw_slowdown 25% of readings, SM clock mean 0 MHz; "
                                "GPU 1 (T4): sw_power_cap 20% of readings, SM clock mean 1400 MHz")


def test_input_check_evidence_in_ms():
    check = b.input_wait(0.5, step_s=0.5123, compute_step_s=0.2561)
    finding = verdicts.input_bound(b.report(device="GPU:0", gpus=[b.gpu()], step=0.5, input_wait=check))
    assert finding.title == "Highly input-bound: 50% of each step waits for data"
    assert finding.evidence.startswith("mean step 512.3 ms with your pipeline, 256.1 ms with one batch")
    check.wait_share_interval = (0.4349, 0.5651)
    finding = verdicts.input_bound(b.report(device="GPU:0", gpus=[b.gpu()], step=0.5, input_wait=check))
    assert finding.title == "Highly input-bound: 50% (43-57) of each step waits for data"
    likely = verdicts.input_bound(b.report(device="GPU:0", gpus=[b.gpu(util=30.0)], step=0.5123,
                                           host=b.host(cpu_process_mean=90.0)))
    assert likely.evidence.endswith("median step 512.3 ms")


def test_every_rule_has_a_short_fix_for_the_headline():
    names = {rule.__name__ for rule in verdicts.RULES}
    assert set(verdicts.ACTIONS) == {"gpu_unused", "idle_gpus", "input_bound", "epoch_start", "slow_callback",
                                     "validation_heavy", "throttled", "memory_reserved",
                                     "memory_full", "dispatch_bound", "sms_idle", "tensor_cores_idle",
                                     "compile_dominates"}
    assert names <= set(verdicts.ACTIONS) | {"memory"}


def test_a_comparison_belongs_to_its_models_first_fit():
    first, again, other = b.report(model="m", index=1), b.report(model="m", index=2), b.report(model="o", index=3)
    comparison = Comparison(model="m", steps=10, steps_per_epoch=None, batch_size=None)
    result = dataclasses.replace(b.result([first, again, other]), comparisons=[
        Comparison(model="x", steps=1, steps_per_epoch=None, batch_size=None), comparison])
    assert result.comparison_for(first) is comparison
    assert result.comparison_for(again) is None and result.comparison_for(other) is None


def test_gpu_advice_only_on_a_gpu():
    on_cpu = verdicts.compile_dominates(b.report(device="CPU:0", step=0.02, first_step_s=5.0, wall_s=10.0))
    assert on_cpu.fix == "judge speed on the step statistics (they leave the first step out) or on a longer run"
    on_gpu = verdicts.compile_dominates(b.report(device="GPU:0", gpus=[b.gpu()], step=0.02, first_step_s=5.0, wall_s=10.0))
    assert on_gpu.fix.endswith("; on a GPU the first epoch will always look slower than the rest")
