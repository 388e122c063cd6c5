"""FLOPs per step (counted by hand), the peak table, MFU, GPM through a fake Hopper GPU, and the
verdicts that use them."""

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from colab_magic import flops, mfu, peaks
from colab_magic.verdicts import findings
from tests import builders
from tests.fake_pynvml import a100, h100, t4

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.keras

B = 32


def dense_stack():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile("sgd", "mse")
    return model


DENSE_BY_HAND = 3 * 2 * B * (20 * 64 + 64 * 32 + 32 * 10)  # training = 3 x forward, 2 FLOPs a multiply-add


def conv_net():
    """The article's CIFAR-10 CNN."""
    L = keras.layers
    model = keras.Sequential([keras.Input((32, 32, 3)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
                              L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(), L.Conv2D(64, 3, activation="relu"),
                              L.Flatten(), L.Dense(64, activation="relu"), L.Dense(10)])
    model.compile("sgd", "mse")
    return model


CONV_BY_HAND = 3 * B * (
    2 * 30 * 30 * (3 * 3 * 3) * 32  # Conv2D 32: 30x30 outputs, a 3x3x3 window each
    + 15 * 15 * 32 * 4  # MaxPooling2D 2x2: 15x15x32 outputs, 4 inputs each
    + 2 * 13 * 13 * (3 * 3 * 32) * 64  # Conv2D 64
    + 6 * 6 * 64 * 4  # MaxPooling2D
    + 2 * 4 * 4 * (3 * 3 * 64) * 64  # Conv2D 64
    + 2 * 1024 * 64 + 2 * 64 * 10  # Dense 64, Dense 10
)


def test_dense_stack_counted_by_hand():
    counted = flops.per_step(dense_stack(), "tensorflow", batch_size=B)
    assert counted.flops == DENSE_BY_HAND and counted.method.startswith("analytic") and counted.uncounted == []


def test_conv_net_counted_by_hand():
    assert flops.per_step(conv_net(), "tensorflow", batch_size=B).flops == CONV_BY_HAND


def test_other_layers_counted_by_hand():
    L = keras.layers
    cases = [
        (keras.Sequential([keras.Input((10, 8)), L.LSTM(16)]), 2 * 10 * (8 * 64 + 16 * 64)),
        (keras.Sequential([keras.Input((10, 8)), L.GRU(16)]), 2 * 10 * (8 * 48 + 16 * 48)),
        (keras.Sequential([keras.Input((8, 8, 4)), L.DepthwiseConv2D(3)]), 2 * 6 * 6 * 9 * 4),
        (keras.Sequential([keras.Input((8, 8, 4)), L.SeparableConv2D(6, 3)]), 2 * 6 * 6 * (9 * 4 + 4 * 6)),
        (keras.Sequential([keras.Input((4, 4, 3)), L.Conv2DTranspose(5, 3)]), 2 * 4 * 4 * 9 * 3 * 5),
        (keras.Sequential([keras.Input((12,), dtype="int32"), L.Embedding(100, 8)]), 0),
        (keras.Sequential([keras.Input((6, 5)), L.BatchNormalization()]), flops.NORM_FLOPS_PER_ELEMENT * 30),
    ]
    for model, forward in cases:
        got, uncounted = flops.forward_flops_per_sample(model)
        assert (got, uncounted) == (forward, []), model.layers[-1]
    q = keras.Input((6, 16))
    attention = keras.Model(q, L.MultiHeadAttention(num_heads=2, key_dim=4)(q, q))
    projections = 2 * (6 * 16 * 8) * 3 + 2 * 6 * (8 * 16)  # q, k, v: 16 -> 2x4; output: 2x4 -> 16
    assert flops.forward_flops_per_sample(attention) == (projections + 2 * 2 * 6 * 6 * 4 * 2, [])


def test_an_unknown_layer_with_weights_is_named_not_guessed():
    class Odd(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 4))

        def call(self, x):
            return keras.ops.matmul(x, self.w)

    model = keras.Sequential([keras.Input((8,)), Odd(), keras.layers.Dense(2)])
    counted = flops.per_step(model, "tensorflow", batch_size=B)
    assert counted.flops == 3 * 2 * B * 4 * 2 and counted.uncounted == ["Odd"] and "not counted: Odd" in counted.note


SCRIPT = r'''
import json, keras, numpy as np
from colab_magic import flops
import tests.test_compute as t
out = {}
for name, build, y_shape in (("dense", t.dense_stack, (10,)), ("conv", t.conv_net, (10,))):
    model = build()
    x = np.random.rand(64, *model.inputs[0].shape[1:]).astype("float32")
    y = np.random.rand(64, *y_shape).astype("float32")
    model.fit(x, y, batch_size=t.B, epochs=1, verbose=0)
    counted = flops.per_step(model, "jax", x, y, t.B)
    out[name] = [counted.flops, counted.method, counted.analytic]
print(json.dumps(out))
'''


def test_jax_xla_count_agrees_with_the_hand_count_within_15_percent():
    env = dict(os.environ, KERAS_BACKEND="jax")
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    for name, by_hand in (("dense", DENSE_BY_HAND), ("conv", CONV_BY_HAND)):
        xla, method, analytic = got[name]
        assert method.startswith("xla") and analytic == by_hand
        assert abs(xla / by_hand - 1) <= 0.15, (name, xla, by_hand)


@pytest.mark.parametrize("nvml_name, row", [
    ("Tesla T4", "T4"), ("NVIDIA A100-SXM4-40GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H200", "H200"),
    ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA A10G", "A10G"), ("Tesla V100-SXM2-16GB", "V100"),
    ("Tesla V100-PCIE-32GB", "V100-PCIE"), ("Tesla P100-PCIE-16GB", "P100-PCIE"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("NVIDIA GeForce RTX 3080", "RTX 3080"), ("Quadro K620", None),
])
def test_nvml_names_find_their_datasheet_row(nvml_name, row):
    found = peaks.find(nvml_name)
    assert (found.gpu if found else None) == row


def test_the_peak_follows_the_precision():
    assert peaks.choose("Tesla T4", "float16", True).flops_per_s == 65e12
    assert peaks.choose("Tesla T4", "float32", True).flops_per_s == 8.1e12  # no TF32 on Turing
    t4_bf16 = peaks.choose("Tesla T4", "bfloat16", True)
    assert t4_bf16.flops_per_s == 8.1e12 and "no BF16 tensor cores" in t4_bf16.basis
    assert peaks.choose("NVIDIA A100-SXM4-40GB", "float32", True).flops_per_s == 156e12
    assert peaks.choose("NVIDIA A100-SXM4-40GB", "float32", False).flops_per_s == 19.5e12
    assert peaks.choose("NVIDIA H100 80GB HBM3", "bfloat16", True).flops_per_s == 989.4e12
    unknown = peaks.choose("Quadro K620", "float32", True)
    assert unknown.flops_per_s is None and "no peak known for Quadro K620" in unknown.basis


def test_mfu_from_the_mean_step_and_the_datasheet_peak():
    model = dense_stack()
    report = builders.report("GPU:0", [builders.gpu(0, "Tesla T4", 80.0)], step=0.002, backend="tensorflow",
                             batch_size=B)
    report = dataclasses.replace(report, **mfu.measure(report, model, {}))
    assert "MFU" not in str(report.peak_basis)
    from colab_magic.fit_view import tables

    headline = tables(builders.result([report]))[0].title  # the answer, first
    assert headline.startswith(f"m on GPU 0 (Tesla T4): 2.00 ms/step, MFU {100 * DENSE_BY_HAND / 0.002 / 8.1e12:.1f}%. ")
    assert report.flops_per_step == DENSE_BY_HAND and report.compute_dtype == "float32"
    assert report.achieved_flops_per_s == pytest.approx(DENSE_BY_HAND / 0.002)
    assert report.peak_flops_per_s == 8.1e12 and report.mfu == pytest.approx(DENSE_BY_HAND / 0.002 / 8.1e12)
    cpu = builders.report("CPU:0", [], step=0.002, backend="tensorflow", batch_size=B)
    cpu = dataclasses.replace(cpu, **mfu.measure(cpu, model, {}))
    assert cpu.mfu is None and cpu.achieved_flops_per_s == pytest.approx(DENSE_BY_HAND / 0.002)
    assert "no MFU on the CPU" in cpu.peak_basis


def test_mixed_precision_is_measured_against_the_tensor_core_peak():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = dense_stack()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    report = builders.report("GPU:0", [builders.gpu(0, "Tesla T4", 80.0)], step=0.002, backend="tensorflow",
                             batch_size=B)
    report = dataclasses.replace(report, **mfu.measure(report, model, {}))
    assert report.compute_dtype == "float16" and report.peak_flops_per_s == 65e12


# --- GPM through the fake NVML -------------------------------------------------------------------


def sampled(fake_nvml, gpus, seconds=0.35, during=None):
    from colab_magic.fit_report import build_report
    from colab_magic.observer import FitFacts
    from colab_magic.sampler import Sampler
    from colab_magic.timing import StepTimer

    fake = fake_nvml(gpus)
    timer = StepTimer()
    timer.fit_started(timer.plan)
    with Sampler(interval=0.02) as sampler:
        assert sampler.ready.wait(5)
        time.sleep(seconds / 2)
        if during:
            during(fake)
        time.sleep(seconds / 2)
    return fake, build_report(1, timer, sampler, FitFacts("keras", "m", "jax", device="GPU:0"))


def test_gpm_figures_of_a_hopper_gpu_and_the_reason_another_has_none(fake_nvml):
    fake, rep = sampled(fake_nvml, [h100(), t4()])
    hopper, turing = rep.gpus
    assert (hopper.sm_activity_pct, hopper.sm_occupancy_pct, hopper.tensor_activity_pct, hopper.dram_bw_pct) == (
        40.0, 20.0, 25.0, 30.0)
    assert hopper.gpm_note is None and hopper.gpm_readings >= 3 and hopper.gpm_failures == 0
    assert set(v for _, v in rep.timeline["gpus"][0]["sm_activity_pct"]) == {40.0}
    assert turing.gpm_note == "this GPU has no GPM (Hopper or newer, with a recent driver)"
    assert turing.sm_activity_pct is None and rep.timeline["gpus"][1]["sm_activity_pct"] == []
    assert fake.gpm_live == 0  # every sample freed


def test_gpm_failing_mid_run_is_a_gap_not_an_error(fake_nvml):
    def fail(fake):
        fake.gpus[0].gpm_fail = True

    fake, rep = sampled(fake_nvml, [h100()], during=fail)
    g = rep.gpus[0]
    assert g.gpm_failures >= 1 and g.gpm_note is None
    assert g.sm_activity_pct == 40.0  # the window between the first and the last good sample
    assert rep.sampler.errors == [] and fake.gpm_live == 0


def test_gpm_not_read_under_mig_or_without_the_calls(fake_nvml, monkeypatch):
    _, rep = sampled(fake_nvml, [h100(mig=(1, 1))], seconds=0.1)
    assert "MIG mode is on" in rep.gpus[0].gpm_note
    fake = fake_nvml([h100()])
    del fake.module.nvmlGpmMetricsGet  # an nvidia-ml-py from before GPM
    _, rep = sampled(lambda gpus: fake, None, seconds=0.1)
    assert "no GPM calls" in rep.gpus[0].gpm_note


# --- verdicts ------------------------------------------------------------------------------------


def gpm_gpu(util, sm, tensor=30.0, name="NVIDIA H100 80GB HBM3"):
    return builders.gpu(0, name, util, sm_activity_pct=sm, sm_occupancy_pct=sm / 2, tensor_activity_pct=tensor)


def rules(report):
    return [f.rule for f in findings(report)]


def test_kernels_too_small_for_the_gpu_at_the_thresholds():
    def r(util, sm):
        return builders.report("GPU:0", [gpm_gpu(util, sm)], step=0.05, compute_dtype="float32")

    assert rules(r(50.0, 49.9)) == ["sms_idle"]
    assert rules(r(50.0, 50.0)) == [] and rules(r(49.9, 10.0)) == []
    (f,) = findings(r(90.0, 12.0))
    assert f.evidence == ("a kernel was running 90% of the time, but on average only 12% of "
                          "GPU 0 (NVIDIA H100 80GB HBM3)'s SMs were busy (SM occupancy 6%)")
    assert "larger batch" in f.fix


def test_tensor_cores_idle_in_float32():
    def r(gpu, dtype="float32"):
        return builders.report("GPU:0", [gpu], step=0.05, compute_dtype=dtype)

    # GPM says so: below 1% tensor activity on a busy H100
    assert rules(r(gpm_gpu(90.0, 85.0, tensor=0.9))) == ["tensor_cores_idle"]
    assert rules(r(gpm_gpu(90.0, 85.0, tensor=1.0))) == []
    # no GPM, but a T4 has no TF32: float32 cannot use its tensor cores
    (f,) = findings(r(builders.gpu(0, "Tesla T4", 80.0)))
    assert f.rule == "tensor_cores_idle" and "no TF32" in f.evidence and "mixed_float16" in f.fix
    assert rules(r(builders.gpu(0, "Tesla T4", 80.0), dtype="float16")) == []
    assert rules(r(builders.gpu(0, "Tesla T4", 19.9))) == []  # an idle GPU: precision is not its problem
    assert rules(r(builders.gpu(0, "NVIDIA A100-SXM4-40GB", 80.0))) == []  # may be TF32: cannot tell without GPM
    assert rules(r(builders.gpu(0, "Tesla P100-PCIE-16GB", 80.0))) == []  # no tensor cores at all


def test_the_summary_shows_gpm_and_compute(ip, fake_nvml, capsys):
    fake_nvml([h100(), a100()])
    ip.run_cell("import numpy as np, keras\nx = np.ones((64, 4), 'float32'); y = np.ones((64, 1), 'float32')").raise_error()
    cell = "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nm.compile('sgd', 'mse')\nm.fit(x, y, epochs=2, verbose=0)"
    ip.run_cell(f"%%timed_fit -d --interval 0.05 --no-history -v R\n{cell}").raise_error()
    out = " ".join(capsys.readouterr().out.split())  # three columns: one block per column at 100 wide
    hardware = out[out.index("Hardware: host (CPU) and GPUs"):]
    h100_block = hardware[hardware.index("GPU 0 (NVIDIA H100 80GB HBM3) utilisation"):hardware.index("GPU 1 (NVIDIA A100")]
    a100_block = hardware[hardware.index("GPU 1 (NVIDIA A100-SXM4-40GB) utilisation"):]
    assert "SMs busy / occupancy (GPM): 40% / 20%;" in h100_block
    assert "SMs busy / occupancy (GPM): not read: this GPU has no GPM" in a100_block
    assert "compute 768 FLOP/step by analytic" in out and "no MFU on the CPU" in out
    rep = ip.user_ns["R"][0]
    assert rep.flops_per_step == 3 * 2 * 32 * 4 and rep.achieved_flops_per_s == pytest.approx(768 / rep.step.mean)
    assert json.loads(json.dumps(ip.user_ns["R"].to_dict()))["reports"][0]["gpus"][0]["sm_activity_pct"] == 40.0
