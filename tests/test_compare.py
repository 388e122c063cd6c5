"""%%timed_fit --compare on real Keras (TensorFlow backend, CPU: this machine has no GPU)."""

import dataclasses
import json

import numpy as np
import pytest
from IPython.core.error import UsageError

from colab_magic import history
from colab_magic.units import fmt_s, seconds_interval

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((640, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
class Starts(keras.callbacks.Callback):
    fits = 0
    def on_train_begin(self, logs=None):
        Starts.fits += 1
def make_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)], name="net")
    model.compile(optimizer="sgd", loss="mse")
    return model
'''


def test_compare_times_a_clone_and_leaves_the_users_model_alone(kip, capsys):
    cell = '''
model = make_model()
before = model.get_weights()
history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[Starts()])
after = model.get_weights()
'''
    kip.run_cell(f"%%timed_fit --compare --steps 12 -v R\n{cell}").raise_error()
    captured = capsys.readouterr()
    r = kip.user_ns["R"]
    assert kip.user_ns["Starts"].fits == 1  # the user's fit ran once; the clones don't carry user callbacks
    for a, b in zip(kip.user_ns["after"], kip.user_ns["model"].get_weights()):
        np.testing.assert_array_equal(a, b)  # the comparison did not touch the user's model
    (c,) = r.comparisons
    assert c.model == "net" and c.steps == 12 and c.steps_per_epoch == 20 and c.batch_size == 32
    (cpu,) = c.runs
    assert cpu.device == "CPU:0" and cpu.error is None and cpu.source == "measured now"
    # --steps 12: the fewest a window times. The epoch (20 steps of about a millisecond) gives a budget
    # that compiling alone overspends, so the window is the fewest, after its own first execution.
    assert cpu.report.total_steps == 13 and cpu.report.step.n == 12 and cpu.timed_steps == 12
    assert cpu.first_step_s > 0 and cpu.trial_s > cpu.timed_s
    # compiling alone went over the budget: the line says what the trials cost and the --budget that holds them
    assert c.wall_s > c.budget_s and c.needed_budget >= 100 * c.wall_s / r.reports[0].epoch_mean_s
    assert (f"Cost {fmt_s(c.wall_s)} of a {fmt_s(c.budget_s)} budget (10% of an epoch); --budget {c.needed_budget} "
            "would hold them all." if c.needed_budget <= 100 else "they take longer than an epoch") in " ".join(captured.out.split())
    # the projection: the clone's mean step and the fixed cost of the user's own (second) epoch
    user_epoch = r.reports[0].epochs[1]
    fixed = user_epoch.time_s - user_epoch.steps_s - user_epoch.val_s
    assert c.fixed_s == pytest.approx(fixed) and fixed > 0
    assert cpu.step_mean_s == pytest.approx(cpu.report.step.mean)
    assert cpu.projected_epoch_s == pytest.approx(20 * cpu.step_mean_s + fixed)
    assert cpu.samples_per_s == pytest.approx(32 / cpu.step_mean_s)
    assert cpu.speedup == pytest.approx(1.0)
    records, _ = history.read(r.history_path)
    (compared,) = [rec for rec in records if rec["kind"] == "compare"]
    assert compared["projected_epoch_s"] == pytest.approx(cpu.projected_epoch_s)
    assert compared["samples_per_s"] == pytest.approx(cpu.samples_per_s)  # the same figure as the table's
    assert compared["step_mean_s"] == pytest.approx(cpu.step_mean_s)
    # No GPU: one line, not a one-column table; the missing GPU is explained once, above it.
    out = " ".join(captured.out.split())
    assert "CPU vs GPU" not in out and out.count("No NVIDIA GPU here") == 1
    lo, hi = cpu.projected_epoch_interval_s
    assert lo <= cpu.projected_epoch_s <= hi
    epoch = seconds_interval(cpu.projected_epoch_s, (lo, hi))
    assert (f"--compare (training only, projected): CPU:0 {cpu.step_median_s * 1000:.2f} ms/step, {epoch} s/epoch. "
            "No GPU here: run this cell in a GPU runtime (with %mount_drive the history follows), then "
            "%fit_history --compare sets the two side by side.") in out
    assert "--compare" in captured.err and captured.err.endswith("\r")  # the progress bar, erased at the end
    json.dumps(r.to_dict())


def test_clone_starts_from_the_weights_before_the_fit(kip):
    from colab_magic.keras_loop import KerasLoop, KerasOptions
    from colab_magic.recorder import CellFits

    with CellFits() as cell, KerasLoop(cell, KerasOptions(capture=True)) as fits:
        kip.run_cell("m = make_model()\nw0 = m.get_weights()\nm.fit(x, y, epochs=1, verbose=0)").raise_error()
    for a, b in zip(fits.captured[0].weights, kip.user_ns["w0"]):
        np.testing.assert_array_equal(a, b)


def test_model_that_cannot_be_cloned_is_skipped_in_one_line(kip, capsys):
    cell = '''
class Opaque(keras.Model):
    def __init__(self, inner):
        super().__init__(name="opaque")
        self.inner = inner
    def call(self, inputs):
        return self.inner(inputs)
    def get_config(self):
        raise NotImplementedError("no config")
model = Opaque(keras.layers.Dense(1))
model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, epochs=1, verbose=0)
'''
    kip.run_cell(f"%%timed_fit --compare -v R\n{cell}").raise_error()
    r = kip.user_ns["R"]
    assert len(r.reports) == 1 and r.reports[0].complete  # the normal fit ran
    assert "cannot be cloned" in r.comparisons[0].skipped
    assert "--compare skipped: the model cannot be cloned" in capsys.readouterr().out


def test_an_unknown_device_is_refused_before_the_cell_runs(kip):
    kip.user_ns.pop("ran", None)
    with pytest.raises(UsageError) as err:
        kip.run_cell_magic("timed_fit", "--compare --devices gpu:5,CUDA", "ran = True")
    # the names the framework sees, before the cell ran
    assert str(err.value) == "--devices: gpu:5, CUDA not among the devices Keras sees: cpu:0" and "ran" not in kip.user_ns


def test_a_failed_cell_runs_no_comparison(kip):
    res = kip.run_cell("%%timed_fit --compare -q -v R\nmake_model().fit(x, y, epochs=1, verbose=0)\n1 / 0")
    assert isinstance(res.error_in_exec, ZeroDivisionError)
    r = kip.user_ns["R"]
    assert r.comparisons == [] and "The cell stopped, so --compare did not run." in r.notes


def test_gpu_run_from_the_history_stands_beside_the_cpu(kip, tmp_path):
    path = tmp_path / "runs.jsonl"
    kip.run_cell(f"%%timed_fit -q --history {path}\nmake_model().fit(x, y, batch_size=32, epochs=1, verbose=0)").raise_error()
    (mine,) = history.read(path)[0]
    # The same model, as recorded earlier on a Colab GPU runtime (another machine): its record
    # differs only in where it ran and how fast.
    gpu = dict(mine, id="gpu00001", device="GPU:0", device_name="Tesla T4", step_median_s=mine["step_median_s"] / 8,
               step_mean_s=mine["step_mean_s"] / 8, step_mean_interval_s=[v / 8 for v in mine["step_mean_interval_s"]],
               env=dict(mine["env"], runtime="Google Colab (GPU runtime)", host="colab-vm"), time="2026-11-25T10:00:00+00:00")
    history.append(gpu, path)
    kip.run_cell(f"%%timed_fit --compare -q -v R --history {path}\nmake_model().fit(x, y, batch_size=32, epochs=1, verbose=0)").raise_error()
    c = kip.user_ns["R"].comparisons[0]
    cpu, t4 = c.runs
    assert t4.device == "GPU:0" and t4.name == "Tesla T4" and t4.report is None
    assert t4.source == "history: Google Colab (GPU runtime) on colab-vm, 2026-11-25T10:00:00+00:00"
    assert t4.speedup == pytest.approx(cpu.step_mean_s / t4.step_mean_s)
    assert "GPU columns marked 'history'" in " ".join(c.notes)
    brief = " ".join(str(kip.user_ns["R"]).split())
    assert f"GPU:0 {t4.step_median_s * 1000:.2f} ms/step" in brief and "(from the history)" in brief
    assert "No GPU" not in brief  # the history supplied one: no "run this cell in a GPU runtime"
    text = " ".join(str(dataclasses.replace(kip.user_ns["R"], detailed=True)).split())
    assert "GPU:0 (Tesla T4)" in text and "history: Google Colab (GPU runtime) on colab-vm" in text
    assert "as measured in your fit" in text and "No GPU" not in text  # the history supplied one
    assert kip.user_ns["R"].headline.startswith("net on the CPU: ")
    lo, hi = t4.speedup_interval  # the trial's interval and the recorded fit's, combined
    assert lo < t4.speedup < hi
    assert (f"; GPU:0 {t4.speedup:.1f}x faster than the CPU ({lo:.1f}-{hi:.1f}x) (GPU run from the history)"
            in kip.user_ns["R"].headline)


@pytest.mark.parametrize(
    "line, message",
    [
        ("--steps 10", "--steps and --budget go with --compare or --whatif"),
        ("--devices cpu:0", "--devices goes with --compare"),
        ("--compare --steps 1", "--steps must be at least 2"),
        ("--compare --steps 10001", "--steps must be at most 10000"),
        ("--compare --steps 100000000", "--steps must be at most 10000"),
        ("--history a.jsonl --no-history", "don't go together"),
    ],
)
def test_bad_compare_flags(kip, line, message):
    with pytest.raises(UsageError, match=message):
        kip.run_cell_magic("timed_fit", line, "pass")


def test_speedup_falls_back_to_medians_for_a_history_run_without_a_mean():
    from colab_magic.run_summary import Comparison, RunSummary

    # A record written before the history kept mean steps has only the median: both sides use it.
    cpu = RunSummary("CPU:0", step_median_s=0.010, step_mean_s=0.012)
    old_gpu = RunSummary("GPU:0", step_median_s=0.002)
    new_gpu = RunSummary("GPU:1", step_median_s=0.002, step_mean_s=0.003)
    c = Comparison("net", 40, 100, 32, runs=[cpu, old_gpu, new_gpu])
    c.add_speedups()
    assert old_gpu.speedup == pytest.approx(5.0) and new_gpu.speedup == pytest.approx(4.0) and cpu.speedup == pytest.approx(1.0)


def test_a_large_steps_on_tf_data_times_an_epoch_at_most(kip):
    """--compare --steps 100000000 on tf.data was still running after 60 s: a trial times an epoch at
    most (here 20 steps), whatever --steps asks within its limit."""
    kip.run_cell("import tensorflow as tf\nds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)").raise_error()
    kip.run_cell("%%timed_fit --compare --devices cpu:0 --steps 10000 -q -v R --no-history\n"
                 "model = make_model()\nmodel.fit(ds, epochs=2, verbose=0)").raise_error()
    (run,) = kip.user_ns["R"].comparisons[0].runs
    assert run.error is None and 2 <= run.timed_steps <= 20
