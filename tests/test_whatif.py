"""%%timed_fit --whatif, and the trials under it and --compare, on real Keras (TensorFlow on the CPU)."""

import dataclasses
import json

import numpy as np
import pytest
from IPython.core.error import UsageError

from colab_magic import history, trials
from colab_magic.recorder import FitOptions
from colab_magic.units import fmt_s
from colab_magic.variants import AS_IS, cpu_has_bf16

keras = pytest.importorskip("keras")
pytestmark = [pytest.mark.keras, pytest.mark.solo]  # solo: judges measured shares of time (pyproject)

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((2048, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
STOP = False

@keras.saving.register_keras_serializable("whatif_tests")
class Float32Only(keras.layers.Dense):
    """A user's layer that only works in float32."""
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.dtype_policy.name != "float32":
            raise TypeError("Float32Only needs float32")

@keras.saving.register_keras_serializable("whatif_tests")
class Interrupted(keras.layers.Dense):
    """Traced again by each copy: Ctrl-C lands there once STOP is set."""
    def call(self, inputs):
        if STOP:
            raise KeyboardInterrupt
        return super().call(inputs)

TRACES, STOP_AFTER, STOP_BATCH = 0, None, None

@keras.saving.register_keras_serializable("whatif_tests")
class CountedStop(keras.layers.Dense):
    """Ctrl-C at a chosen point of the trials: after STOP_AFTER traces of copies, or in the copy whose
    batch is STOP_BATCH (batch x4's)."""
    def call(self, inputs):
        global TRACES
        if STOP_AFTER is not None:
            TRACES += 1
            if TRACES > STOP_AFTER:
                raise KeyboardInterrupt
        if STOP_BATCH is not None and inputs.shape[0] == STOP_BATCH:
            raise KeyboardInterrupt
        return super().call(inputs)

def make_model(first=keras.layers.Dense):
    model = keras.Sequential([keras.Input((8,)), first(16, activation="relu"), keras.layers.Dense(1)], name="net")
    model.compile(optimizer="sgd", loss="mse")
    return model
'''
FIT = "model.fit(x, y, batch_size=32, epochs=2, verbose=0)"


def policy():
    return keras.config.dtype_policy().name


def test_whatif_times_each_change_beside_the_model_as_it_is(kip, tmp_path):
    path = tmp_path / "runs.jsonl"
    kip.run_cell("model = make_model()\nbefore = model.get_weights()").raise_error()
    kip.run_cell(f"%%timed_fit --whatif spe,batch -q -v R --history {path}\n{FIT}\nafter = model.get_weights()\n"
                 "steps_after = int(model.optimizer.iterations)").raise_error()
    r = kip.user_ns["R"]
    (w,) = r.whatifs
    assert (w.model, w.device, w.skipped) == ("net", "CPU:0", None)
    base = w.baseline
    assert base.variant is None and base.error is None and base.kind == "whatif"
    assert base.timed_steps >= 20 and base.timed_s > 0
    spe, big = w.runs
    assert (spe.variant, spe.error, big.variant, big.error) == ("steps_per_execution=32", None, "batch x4", None)
    assert spe.report.steps_per_execution == 32 and spe.timed_steps % 32 == 0 and spe.timed_steps >= 128
    assert big.batch_size == 128 and big.steps_per_epoch == 16  # 64 steps of 32: 16 of 128
    for run in (spe, big):
        # samples/s over the model as it is, with the interval around it
        assert run.speedup == pytest.approx(run.samples_per_s / base.samples_per_s)
        lo, hi = run.speedup_interval
        assert lo < run.speedup < hi
    # the user's model, weights and compile config are as the fit left them
    for a, b in zip(kip.user_ns["after"], kip.user_ns["model"].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert kip.user_ns["model"].steps_per_execution == 1 and policy() == "float32"
    assert int(kip.user_ns["model"].optimizer.iterations) == kip.user_ns["steps_after"] == 128  # its own optimizer
    d = json.loads(json.dumps(r.to_dict()))
    (wd,) = d["whatifs"]
    assert [run["variant"] for run in wd["runs"]] == ["steps_per_execution=32", "batch x4"]
    assert {"variant", "samples_per_s", "speedup", "speedup_interval", "error", "timed_s", "timed_steps"} <= set(wd["runs"][0])
    records, _ = history.read(path)
    whatifs = [rec for rec in records if rec["kind"] == "whatif"]
    assert [rec["variant"] for rec in whatifs] == [None, "steps_per_execution=32", "batch x4"]
    assert whatifs[1]["speedup"] == pytest.approx(spe.speedup) and whatifs[1]["speedup_interval"] == pytest.approx(list(spe.speedup_interval))
    brief = " ".join(str(r).split())  # the short text: one line for --whatif
    lo, hi = spe.speedup_interval
    assert (f"--whatif on CPU:0 (samples/s over the model as it is): steps_per_execution=32 {spe.speedup:.2f}x "
            f"({lo:.2f}-{hi:.2f}); batch x4 {big.speedup:.2f}x") in brief
    assert "In brackets: 95% intervals" in brief and "What if:" not in brief
    text = " ".join(str(dataclasses.replace(r, detailed=True)).split())  # -d: the table
    assert "What if: net on CPU:0, each change timed from the same start" in text
    assert "batch x4 is compared in samples/s" in text and "In brackets: 95% intervals" in text
    html = r._repr_html_()  # the notebook's view: the same table
    assert "What if: net on CPU:0, each change timed from the same start" in html and "steps_per_execution=32" in html


def test_a_dispatch_bound_fit_quotes_the_measured_fix(kip):
    kip.run_cell(f"%%timed_fit --whatif spe -q -v R --no-history\nmodel = make_model()\n{FIT}").raise_error()
    r = kip.user_ns["R"]
    (spe,) = r.whatifs[0].runs
    finding = next(f for f in r.reports[0].findings if f.rule == "dispatch_bound")
    assert finding.fix.endswith("; " + __import__("colab_magic.verdicts", fromlist=["measured"]).measured(spe))


def test_compare_and_whatif_share_the_trial_of_the_model_as_it_is(kip):
    kip.run_cell(f"%%timed_fit --compare --whatif jit -q -v R --no-history\nmodel = make_model()\n{FIT}").raise_error()
    r = kip.user_ns["R"]
    (cpu,) = r.comparisons[0].runs
    w = r.whatifs[0]
    assert w.baseline is cpu and cpu.kind == "compare"
    (jit,) = w.runs
    assert jit.variant == "jit_compile=True" and jit.error is None and jit.report is not None


def test_a_change_that_fails_is_one_line_and_the_others_still_run(kip):
    kip.run_cell(f"%%timed_fit --whatif mixed,spe -q -v R --no-history\nmodel = make_model(Float32Only)\n{FIT}").raise_error()
    mixed, spe = kip.user_ns["R"].whatifs[0].runs
    expected = "TypeError: Float32Only needs float32" if cpu_has_bf16() else "this CPU has no bfloat16 instructions"
    assert mixed.variant == "mixed precision" and mixed.error.startswith(expected)
    assert spe.error is None and spe.speedup is not None
    assert policy() == "float32"  # Keras' global policy is put back after the failure
    text = " ".join(str(kip.user_ns["R"]).split())
    assert f"mixed precision cannot run ({mixed.error})" in text


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bfloat16 instructions")
def test_mixed_precision_computes_in_bfloat16_on_this_cpu_and_leaves_the_policy(kip):
    kip.run_cell(f"%%timed_fit --whatif mixed -q -v R --no-history\nmodel = make_model()\n{FIT}").raise_error()
    (mixed,) = kip.user_ns["R"].whatifs[0].runs
    assert mixed.error is None and mixed.report.compute_dtype == "bfloat16"
    assert policy() == "float32" and kip.user_ns["model"].dtype_policy.name == "float32"
    assert "mixed precision: mixed_bfloat16, with the last layer kept in float32." in kip.user_ns["R"].whatifs[0].notes


def test_ctrl_c_during_the_trials_keeps_the_fit_and_what_finished(kip):
    cell = f"model = make_model(Interrupted)\n{FIT}\nafter = model.get_weights()\nSTOP = True"
    res = kip.run_cell(f"%%timed_fit --compare --whatif spe -q -v R --no-history\n{cell}")
    assert res.error_in_exec is None  # the user's cell ran to its end
    r = kip.user_ns["R"]
    assert r.reports[0].complete
    assert "Ctrl-C stopped --compare and --whatif; the trials that had finished are shown." in r.notes
    for a, b in zip(kip.user_ns["after"], kip.user_ns["model"].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert policy() == "float32"  # (the conftest fixture checks that no sampler thread is left)


def test_a_generator_the_fit_used_up_is_said_once_per_flag(kip):
    cell = ("def batches():\n    for i in range(0, 2048, 32):\n        yield x[i:i + 32], y[i:i + 32]\n"
            "model = make_model()\nmodel.fit(batches(), epochs=1, steps_per_epoch=64, verbose=0)")
    kip.run_cell(f"%%timed_fit --compare --whatif -q -v R --no-history\n{cell}").raise_error()
    r = kip.user_ns["R"]
    assert r.comparisons[0].skipped.startswith("the fit read its data from a Python generator, which it used up")
    assert r.whatifs[0].skipped == r.comparisons[0].skipped


def test_a_larger_batch_of_a_tf_data_input(kip):
    cell = ("import tensorflow as tf\nds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)\n"
            "model = make_model()\nmodel.fit(ds, epochs=2, verbose=0)")
    kip.run_cell(f"%%timed_fit --whatif batch -q -v R --no-history\n{cell}").raise_error()
    (big,) = kip.user_ns["R"].whatifs[0].runs
    assert big.error is None and big.batch_size == 128 and big.speedup is not None


def test_the_default_list_keeps_within_the_budget_and_says_what_it_left_out(kip):
    kip.run_cell(f"%%timed_fit --whatif -q -v R --no-history\nmodel = make_model()\n{FIT}").raise_error()
    r = kip.user_ns["R"]
    w = r.whatifs[0]
    # epochs of about 0.1 s: a 10 ms budget, under one trial's compiling: nothing runs, not even the model
    # as it is, and the line says which --whatif runs them, and the --budget that would hold them
    assert w.baseline is None and [run.variant for run in w.runs if run.error is None] == []
    assert w.left_out[0] == "spe" and set(w.left_out) <= {"spe", "batch", "jit", "mixed"}  # the named fix first
    assert w.wall_s < w.budget_s
    each = trials.least_cost_s(r.reports[0])
    assert w.needed_budget >= 100 * (len(w.left_out) + 1) * each / r.reports[0].epoch_mean_s
    keys = ",".join(w.left_out)
    line = " ".join(str(r).split())
    assert (f"Not run, to keep within the budget: {', '.join(w.left_out)} (--whatif {keys} runs them anyway). "
            f"Cost {fmt_s(w.wall_s)} of a {fmt_s(w.budget_s)} budget (10% of an epoch); ") in line
    if w.needed_budget <= 100:
        assert f"--budget {w.needed_budget} would hold them all." in line
    else:  # a 0.1 s epoch: five trials of a compiling copy take several epochs
        assert "they take longer than an epoch, the most --budget allows." in line


def test_a_named_list_runs_whatever_the_budget(kip):
    kip.run_cell(f"%%timed_fit --whatif spe,jit --budget 1 -q -v R --no-history\nmodel = make_model()\n{FIT}").raise_error()
    w = kip.user_ns["R"].whatifs[0]
    assert [run.variant for run in w.runs if run.error is None] == ["steps_per_execution=32", "jit_compile=True"]
    assert w.budget_s == pytest.approx(0.01 * kip.user_ns["R"].reports[0].epoch_mean_s)


@pytest.mark.parametrize("line, message", [
    ("--whatif fp16", "--whatif: unknown change 'fp16'; the valid ones are steps_per_execution (spe), batch_x4 "
                      "(batch), mixed_precision (mixed), jit_compile (jit)"),
    ("--steps 10", "--steps and --budget go with --compare or --whatif"),
    ("--budget 5", "--steps and --budget go with --compare or --whatif"),
    ("--whatif --devices cpu:0", "--devices goes with --compare"),
    ("--compare --budget 0", "--budget must be a percentage of an epoch, above 0 and at most 100"),
    ("--whatif --budget 101", "--budget must be a percentage of an epoch, above 0 and at most 100"),
    ("--whatif --budget nan", "--budget must be a percentage of an epoch, above 0 and at most 100"),
])
def test_bad_trial_flags_are_one_line_before_the_cell_runs(kip, line, message):
    kip.user_ns.pop("ran", None)  # the shell is shared: the name must not be there before, nor after
    with pytest.raises(UsageError) as err:
        kip.run_cell_magic("timed_fit", line, "ran = True")
    assert str(err.value) == message and "ran" not in kip.user_ns


def test_a_window_stops_once_it_holds_its_time(kip):
    kip.run_cell("model = make_model()").raise_error()
    model = kip.user_ns["model"]
    plan = trials.Plan(model=model, config=model.get_compile_config(), weights=model.get_weights(),
                       arguments={"x": kip.user_ns["x"], "y": kip.user_ns["y"], "batch_size": 8},
                       batch_size=8, steps_per_epoch=None, fixed_s=None, fixed_range=None, fit_steps=None,
                       epoch_s=None, min_steps=4, target_s=0.05)
    run = trials.run(plan, "cpu:0", AS_IS)
    assert run.error is None and run.timed_s >= 0.05 and run.timed_steps >= 4
    # the stop: a fit of 200 steps that ends after three timed ones
    clone = trials.build(plan, "cpu:0", AS_IS)
    report = trials.fit_clone(clone, FitOptions(0.5), trials.WindowStop(0.0, 3),
                              **trials.inputs(plan, AS_IS, 200))
    assert report.total_steps == 4 and report.step.n == 3  # the first (compiling) one kept apart


def test_ctrl_c_in_a_later_trial_keeps_the_trials_that_finished(kip, tmp_path):
    """Ctrl-C in --compare's second trial, or --whatif's third, used to drop every trial that had
    finished (comparisons == [], whatifs == [], no records) though the note said they were shown."""
    path = tmp_path / "runs.jsonl"
    reset = "TRACES, STOP_AFTER, STOP_BATCH = 0, None, None"
    kip.run_cell(reset).raise_error()
    # how many traces one trial of this model takes here: the second trial stops at its first
    kip.run_cell(f"%%timed_fit --compare --devices cpu:0 -q --no-history\nmodel = make_model(CountedStop)\n{FIT}\n"
                 "STOP_AFTER = 10**9").raise_error()
    per_trial = kip.user_ns["TRACES"]
    assert per_trial >= 1
    kip.run_cell(reset).raise_error()
    res = kip.run_cell(f"%%timed_fit --compare --devices cpu:0,cpu:0 -q -v R --history {path}\n"
                       f"model = make_model(CountedStop)\n{FIT}\nSTOP_AFTER = {per_trial}")
    assert res.error_in_exec is None
    r = kip.user_ns["R"]
    (comparison,) = r.comparisons
    assert comparison.interrupted and [run.device for run in comparison.runs] == ["CPU:0"]
    assert comparison.runs[0].error is None and comparison.runs[0].step_mean_s > 0
    assert "Ctrl-C stopped --compare; the trials that had finished are shown." in r.notes
    assert r.to_dict()["comparisons"][0]["interrupted"] is True
    kinds = [record["kind"] for record in history.read(path)[0]]
    assert kinds == ["fit", "compare"]  # the finished trial is recorded too
    # --whatif spe,batch,jit: Ctrl-C in its third trial (batch x4) keeps the baseline and spe
    kip.run_cell(reset).raise_error()
    res = kip.run_cell(f"%%timed_fit --whatif spe,batch,jit -q -v W --history {path}\n"
                       f"model = make_model(CountedStop)\n{FIT}\nSTOP_BATCH = 128")
    assert res.error_in_exec is None
    w = kip.user_ns["W"]
    (whatif,) = w.whatifs
    assert whatif.interrupted and whatif.baseline is not None and whatif.baseline.error is None
    assert [run.variant for run in whatif.runs] == ["steps_per_execution=32"]
    assert whatif.runs[0].error is None and whatif.runs[0].speedup is not None
    assert "Ctrl-C stopped --whatif; the trials that had finished are shown." in w.notes
    kinds = [record["kind"] for record in history.read(path)[0]]
    assert kinds[2:] == ["fit", "whatif", "whatif"]
    kip.run_cell(reset).raise_error()
