"""--whatif's changes (colab_magic.variants) and how the verdicts quote what was measured
(colab_magic.verdicts.quote_measured), without training."""

import dataclasses

import numpy as np
import pytest

from colab_magic import variants
from colab_magic.parts import Finding
from colab_magic.run_summary import RunSummary, WhatIf
from colab_magic.variants import CATALOGUE, already_on, cannot_run, cpu_has_bf16, parse
from colab_magic.verdicts import findings, measured, quote_measured
from tests import builders

VALID = "steps_per_execution (spe), batch_x4 (batch), mixed_precision (mixed), jit_compile (jit)"


def test_the_list_by_name_or_alias_in_the_order_given_once_each():
    assert parse(None) is None and parse("") is None  # the default: each that applies
    assert [v.key for v in parse("jit, SPE,batch_x4,spe")] == ["jit_compile", "steps_per_execution", "batch_x4"]
    assert [v.label for v in parse("mixed")] == ["mixed precision"]


@pytest.mark.parametrize("text, message", [
    ("fp16", f"--whatif: unknown change 'fp16'; the valid ones are {VALID}"),
    ("spe,bogus", f"--whatif: unknown change 'bogus'; the valid ones are {VALID}"),
    (",", f"--whatif needs at least one of {VALID}"),
])
def test_an_unknown_change_names_the_valid_ones(text, message):
    with pytest.raises(ValueError) as err:
        parse(text)
    assert str(err.value) == message


def test_bfloat16_from_the_cpus_flags():
    assert cpu_has_bf16("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16("flags\t\t: sse amx_bf16 amx_tile\n")
    assert not cpu_has_bf16("flags : fpu avx2 avx512f\n") and not cpu_has_bf16("")


class Model:
    def __init__(self, spe=1, jit=False, policy="float32"):
        self.steps_per_execution, self.jit_compile = spe, jit
        self.dtype_policy = type("Policy", (), {"name": policy})()


BF16 = "flags : avx512_bf16"


@pytest.mark.parametrize("key, backend, device, x, batch, cpuinfo, why", [
    ("steps_per_execution", "torch", "CPU:0", None, 32, BF16, "Keras' torch backend runs one step per call"),
    ("steps_per_execution", "jax", "GPU:0", None, 32, BF16, None),
    ("jit_compile", "jax", "GPU:0", None, 32, BF16, "JAX always compiles the step with XLA"),
    ("jit_compile", "torch", "GPU:0", None, 32, BF16, "on torch, jit_compile=True means torch.compile"),
    ("jit_compile", "tensorflow", "CPU:0", None, 32, BF16, None),
    ("mixed_precision", "tensorflow", "CPU:0", None, 32, "flags : avx2", "this CPU has no bfloat16 instructions"),
    ("mixed_precision", "tensorflow", "CPU:0", None, 32, BF16, None),
    ("mixed_precision", "tensorflow", "GPU:0", None, 32, "flags : avx2", None),  # float16 on the GPU
    ("batch_x4", "tensorflow", "CPU:0", [[1.0]], None, BF16, "the batch size of this input is unknown"),
    ("batch_x4", "tensorflow", "CPU:0", iter([]), 32, BF16, "a larger batch can be tried on arrays and tf.data"),
])
def test_why_a_change_cannot_run(key, backend, device, x, batch, cpuinfo, why):
    found = cannot_run(CATALOGUE[key], backend, device, Model(), x, batch, cpuinfo)
    assert (found is None) if why is None else found.startswith(why)


def test_a_change_the_model_already_has():
    assert already_on(CATALOGUE["steps_per_execution"], Model(spe=32)) == "the model already runs 32 steps per call"
    assert already_on(CATALOGUE["steps_per_execution"], Model(spe=31)) is None
    assert already_on(CATALOGUE["jit_compile"], Model(jit=True)).startswith("the model already compiles with XLA")
    assert already_on(CATALOGUE["mixed_precision"], Model(policy="mixed_bfloat16")) == \
        "the model already computes in mixed_bfloat16"
    assert already_on(CATALOGUE["mixed_precision"], Model()) is None
    assert already_on(CATALOGUE["batch_x4"], Model(spe=64)) is None


def test_the_policy_of_mixed_precision_per_device():
    mixed = CATALOGUE["mixed_precision"]
    assert variants.policy(mixed, "GPU:0") == "mixed_float16" and variants.policy(mixed, "CPU:0") == "mixed_bfloat16"
    assert variants.policy(CATALOGUE["jit_compile"], "GPU:0") is None


def run(variant, speedup, interval, device="CPU:0", sps=1000.0):
    return RunSummary(device, kind="whatif", variant=variant, speedup=speedup, speedup_interval=interval,
                      samples_per_s=sps)


@pytest.mark.parametrize("speedup, interval, text", [
    (3.4, (3.1, 3.7), "steps_per_execution=32: measured 3.4x faster (3.10-3.70)"),
    (1.3, (1.15, 1.5), "steps_per_execution=32: measured 1.3x faster (1.15-1.50)"),  # a clear gain at its edge
    (1.3, (1.149, 1.5), "steps_per_execution=32: no clear gain on this CPU (1.30x (1.15-1.50))"),
    (0.5, (0.4, 0.99), "steps_per_execution=32: measured 2.0x slower (1.01-2.50)"),  # 1/0.99, 1/0.4
    (0.9, (0.8, 1.0), "steps_per_execution=32: no clear gain on this CPU (0.90x (0.80-1.00))"),
    (2.0, None, "steps_per_execution=32: measured 2.0x faster"),
])
def test_a_measured_change_in_words(speedup, interval, text):
    assert measured(run("steps_per_execution=32", speedup, interval)) == text


def test_no_clear_gain_names_the_gpu():
    assert measured(run("mixed precision", 1.0, (0.9, 1.1), device="GPU:0")) == \
        "mixed precision: no clear gain on GPU:0 (1.00x (0.90-1.10))"


def dispatch_bound_report():
    report = builders.report(device="CPU:0", step=0.001)
    report = dataclasses.replace(report, findings=findings(report))
    assert [f.rule for f in report.findings] == ["dispatch_bound"]
    return report


def test_a_finding_quotes_what_was_measured_for_its_fixes():
    report = dispatch_bound_report()
    fix = report.findings[0].fix
    whatif = WhatIf("m", "CPU:0", baseline=RunSummary("CPU:0", samples_per_s=1000.0), runs=[
        run("steps_per_execution=32", 3.4, (3.1, 3.7)), run("jit_compile=True", 1.0, (0.9, 1.1)),
        RunSummary("CPU:0", kind="whatif", variant="batch x4", error="out of memory")])
    (finding,) = quote_measured(report.findings, whatif)  # a win the finding names is quoted there, not repeated
    assert report.findings[0].fix == fix  # the given findings are left as they were
    assert finding.fix == (fix + "; steps_per_execution=32: measured 3.4x faster (3.10-3.70); "
                                 "jit_compile=True: no clear gain on this CPU (1.00x (0.90-1.10))")
    assert finding.action == "steps_per_execution=32, measured 3.4x faster"


def test_no_clear_winner_keeps_the_action():
    report = dispatch_bound_report()
    action = report.findings[0].action
    quoted = quote_measured(report.findings, WhatIf("m", "CPU:0", baseline=RunSummary("CPU:0"),
                                                    runs=[run("jit_compile=True", 1.2, (1.1, 1.3))]))
    assert quoted[0].action == action and "jit_compile=True: no clear gain" in quoted[0].fix


def test_a_clear_win_no_finding_names_becomes_a_finding_second():
    given = [Finding("compile_dominates", "Compilation dominates", "e", "f", "a"), Finding("x", "X", "e", "f", "a")]
    whatif = WhatIf("m", "CPU:0", baseline=RunSummary("CPU:0", samples_per_s=1000.0), runs=[
        run("mixed precision", 1.6, (1.3, 1.9), sps=1600.0), run("batch x4", 1.1, (0.9, 1.3))])
    quoted = quote_measured(given, whatif)
    rules = [f.rule for f in quoted]
    assert rules == ["compile_dominates", "measured_gain", "x"]
    gain = quoted[1]
    assert gain.title == "Measured: mixed precision makes this fit 1.6x faster"
    assert gain.evidence == ("mixed precision: measured 1.6x faster (1.30-1.90): 1,600 against 1,000 samples/s on "
                             "CPU:0, each timed from the same start")
    assert gain.fix.startswith("keras.mixed_precision.set_global_policy") and gain.action == \
        "mixed precision, measured 1.6x faster"


def test_nothing_measured_changes_nothing():
    report = dispatch_bound_report()
    before = [(f.fix, f.action) for f in report.findings]
    for whatif in (None, WhatIf("m", "CPU:0", skipped="no")):
        assert [(f.fix, f.action) for f in quote_measured(report.findings, whatif)] == before


class Dataset:
    element_spec = None  # what tf.data datasets have


@pytest.mark.parametrize("x, ok", [
    (np.zeros((4, 2)), True),
    ((np.zeros((4, 2)), np.zeros(4)), True),
    ([np.zeros((4, 2)), np.zeros(4)], True),
    ({"a": np.zeros((4, 2)), "b": np.zeros(4)}, True),
    (Dataset(), True),
    ([np.zeros(4), "labels"], False),
    ({"a": np.zeros(4), "b": 1}, False),
    (type("Shaped", (), {"shape": (4,)})(), False),  # a shape, but no way to slice it
    (iter([]), False),
])
def test_a_larger_batch_needs_arrays_or_a_dataset(x, ok):
    why = cannot_run(CATALOGUE["batch_x4"], "tensorflow", "CPU:0", Model(), x, 32, BF16)
    assert (why is None) is ok
    if not ok:
        assert why == "a larger batch can be tried on arrays and tf.data datasets, not on this input"


def test_any_larger_batch_needs_a_known_batch():
    double = variants.Variant("batch_x2", "batch x2", batch_factor=2)
    assert cannot_run(double, "jax", "CPU:0", Model(), np.zeros((4, 2)), None, BF16) == \
        "the batch size of this input is unknown, so it cannot be made larger"


def test_jit_compile_on_another_backend_names_it():
    assert cannot_run(CATALOGUE["jit_compile"], "numpy", "CPU:0", Model(), None, 32, BF16) == \
        "jit_compile is TensorFlow's switch, not numpy's"


def test_already_on_reads_what_the_model_has_and_nothing_else():
    assert already_on(CATALOGUE["mixed_precision"], Model(policy="float16")) == "the model already computes in float16"
    assert already_on(CATALOGUE["mixed_precision"], Model(policy="bfloat16")) == "the model already computes in bfloat16"
    bare = object()  # no steps_per_execution, jit_compile or dtype_policy: a float32 model as Keras starts it
    assert all(already_on(v, bare) is None for v in CATALOGUE.values())
    assert already_on(CATALOGUE["steps_per_execution"], Model(spe=None)) is None
    assert already_on(CATALOGUE["jit_compile"], Model(jit="auto")) is None


def test_this_machines_cpu_flags(monkeypatch):
    flags = set()
    for line in open("/proc/cpuinfo").read().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    assert cpu_has_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})

    class Unreadable:  # a system without /proc (the platform boundary)
        def __init__(self, path):
            pass

        def read_text(self):
            raise OSError("no /proc here")

    monkeypatch.setattr(variants, "Path", Unreadable)
    assert cpu_has_bf16() is False


def test_empty_items_in_the_list_are_skipped():
    assert [v.key for v in parse("spe,,jit")] == ["steps_per_execution", "jit_compile"]
