"""%%timed_fit on real (tiny) Keras training, TensorFlow backend; NVML faked where GPUs are needed."""

import dataclasses
import json
import os
import re
import signal
import threading

import pytest
from IPython.core.error import UsageError

from colab_magic.report import TimedFitResult
from tests.fake_pynvml import a100, t4

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
def make_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model
'''


def run(ip, cell, line="-v R -q"):
    result = ip.run_cell(f"%%timed_fit {line}\n{cell}")
    return result, ip.user_ns.get("R")


def test_sequential_fit_timed_per_step_and_epoch(kip):
    res, r = run(kip, "model = make_model()\nhistory = model.fit(x, y, batch_size=32, epochs=3, verbose=0)")
    res.raise_error()
    assert isinstance(r, TimedFitResult) and len(r) == 1 and r.complete
    rep = r[0]
    assert rep.backend == "tensorflow" and rep.device == "CPU:0"
    assert rep.total_steps == 3 * 8 and rep.steps_per_epoch == 8 and rep.epochs_planned == 3
    assert [e.steps for e in rep.epochs] == [8, 8, 8]
    assert rep.step.n == 3 * 8 - 1  # the first step is kept apart
    assert rep.first_step_s > rep.step.median > 0
    assert rep.step.p10 <= rep.step.median <= rep.step.p90
    assert rep.samples_per_s == pytest.approx(32 / rep.step.median)
    assert rep.batch_size == 32
    assert all(e.time_s >= e.train_s > 0 for e in rep.epochs)
    # the user's History comes back as usual, in the user's namespace
    assert isinstance(kip.user_ns["history"], keras.callbacks.History)
    assert len(kip.user_ns["history"].history["loss"]) == 3
    json.dumps(r.to_dict())  # JSON-serialisable


def test_step_time_sums_to_training_time(kip):
    res, r = run(kip, "model = make_model()\nmodel.fit(x, y, batch_size=16, epochs=2, verbose=0)")
    res.raise_error()
    rep = r[0]
    stepped = rep.step.mean * rep.step.n + rep.first_step_s
    assert stepped == pytest.approx(sum(e.steps_s for e in rep.epochs), rel=1e-9)
    # what the steps don't cover is each epoch's fixed cost (iterator set-up, callbacks)
    assert all(0 < e.steps_s <= e.train_s for e in rep.epochs)


def test_validation_timed_apart(kip):
    res, r = run(kip, "model = make_model()\nmodel.fit(x, y, epochs=2, validation_data=(x, y), verbose=0)")
    res.raise_error()
    for e in r[0].epochs:
        assert e.val_s > 0
        assert e.time_s >= e.train_s + e.val_s


def test_functional_and_subclassed_models_give_two_reports(kip):
    cell = '''
inputs = keras.Input((8,))
functional = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="functional_net")
functional.compile(optimizer="sgd", loss="mse")
functional.fit(x, y, epochs=1, verbose=0)

class Custom(keras.Model):
    def __init__(self):
        super().__init__(name="custom_net")
        self.dense = keras.layers.Dense(1)
    def call(self, inputs):
        return self.dense(inputs)
    def fit(self, *args, **kwargs):
        self.fit_called = True
        return super().fit(*args, **kwargs)

custom = Custom()
custom.compile(optimizer="sgd", loss="mse")
custom.fit(x, y, epochs=2, verbose=0)
'''
    res, r = run(kip, cell)
    res.raise_error()
    assert [rep.model for rep in r] == ["functional_net", "custom_net"]
    assert [rep.index for rep in r] == [1, 2]
    assert [len(rep.epochs) for rep in r] == [1, 2]
    assert kip.user_ns["custom"].fit_called


def test_user_callbacks_list_and_callbacklist_are_respected(kip):
    cell = '''
class Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0
    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

mine = Count()
as_list = [mine]
make_model().fit(x, y, epochs=1, verbose=0, callbacks=as_list)
other = Count()
model = make_model()
cb_list = keras.callbacks.CallbackList([other], add_history=True, model=model)
model.fit(x, y, epochs=1, verbose=0, callbacks=cb_list)
'''
    res, r = run(kip, cell)
    res.raise_error()
    ns = kip.user_ns
    assert ns["mine"].batches == 8 and ns["as_list"] == [ns["mine"]]  # the user's list is not changed
    assert ns["other"].batches == 8
    assert ns["cb_list"].callbacks[0] is ns["other"]
    assert not any(type(c).__name__ == "StepTimer" for c in ns["cb_list"].callbacks)  # ours removed again
    assert [rep.total_steps for rep in r] == [8, 8]


def test_steps_per_execution_counts_every_step(kip):
    cell = '''
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
model.fit(x, y, batch_size=16, epochs=2, verbose=0)
'''
    res, r = run(kip, cell)
    res.raise_error()
    rep = r[0]
    assert rep.steps_per_execution == 4
    assert rep.total_steps == 2 * 16
    # 8 executions; the first kept apart; each interval divided by the 4 steps it covered
    assert rep.step.n == 2 * 16 // 4 - 1


def test_two_gpus_sampled_side_by_side(kip, fake_nvml, capsys):
    fake = fake_nvml([a100(processes=[(os.getpid(), 3 * 2**30)]), t4(clock_events=0x20)])
    # the fake driver keeps a utilisation sample every 1/6 s: the fit spans several (a tiny fit on a fast
    # moment of this machine once ended before the first, and the GPUs had no utilisation)
    res, r = run(kip, "make_model().fit(x, y, epochs=3, verbose=0, callbacks=[keras.callbacks.LambdaCallback("
                      "on_epoch_end=lambda e, l: __import__('time').sleep(0.15))])", line="--interval 0.05 -v R")
    res.raise_error()
    out = str(dataclasses.replace(r, detailed=True))
    hardware = out[out.index("Hardware: host (CPU) and GPUs"):]  # too wide for 100 columns: one block per column
    assert hardware.index("\n  Host (CPU)\n") < hardware.index("\n  GPU 0 (NVIDIA A100-SXM4-40GB)\n") \
        < hardware.index("\n  GPU 1 (Tesla T4)\n")
    a, t = r[0].gpus
    assert a.util_mean == pytest.approx(87) and a.util_source == "driver samples"
    assert t.util_mean == pytest.approx(0)
    assert a.power_mean_w == pytest.approx(250) and a.process_memory_peak == 3 * 2**30
    assert a.energy_j > 0 and a.energy_source == "counter"
    # Energy from the counter, mean power 250 W: joules ~ 250 x the sampled span.
    assert all(j is not None and j >= 0 for e in r[0].epochs for j in e.energy_j)
    assert t.clock_events == {"sw_thermal": 1.0} and t.throttled_fraction == 1.0
    assert "sw_thermal 100% of readings (throttling)" in " ".join(out.split())  # wrapped text, read as one line
    assert fake.initialised == 0 and fake.shutdown_calls == 1


def test_polls_utilisation_where_driver_keeps_no_samples(kip, fake_nvml):
    fake_nvml([t4(util_gpu=55, unsupported={"nvmlDeviceGetSamples"})])
    res, r = run(kip, "make_model().fit(x, y, epochs=2, verbose=0)", line="--interval 0.05 -v R -q")
    res.raise_error()
    gpu = r[0].gpus[0]
    assert gpu.util_source == "polled" and gpu.util_mean == pytest.approx(55)


def test_gpu_lost_mid_run_is_a_gap_and_training_goes_on(kip, fake_nvml):
    fake = fake_nvml([a100(), t4()])
    kip.user_ns["lose"] = lambda: setattr(fake.gpus[1], "lost", True)
    cell = '''
import time
class Lose(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            lose()
        time.sleep(0.15)
model = make_model()
model.fit(x, y, epochs=3, verbose=0, callbacks=[Lose()])
'''
    res, r = run(kip, cell, line="--interval 0.05 -v R -q")
    res.raise_error()
    rep = r[0]
    assert rep.complete and len(rep.epochs) == 3
    assert rep.gpus[0].gaps == []
    assert len(rep.gpus[1].gaps) == 1 and rep.gpus[1].gap_s > 0.2
    assert any("GPU 1: no readings" in note for note in rep.notes)
    assert fake.initialised == 0


def test_no_gpu_gives_cpu_only_summary_with_reason(kip, no_pynvml, capsys):
    res, r = run(kip, "make_model().fit(x, y, epochs=1, verbose=0)", line="-v R")
    res.raise_error()
    out = capsys.readouterr().out
    assert r[0].gpus == [] and "nvidia-ml-py is not installed" in r[0].gpu_note
    # Said once, in the user's terms; NVML's own reason stays in the result object.
    assert out.count("No NVIDIA GPU here") == 1 and "nvidia-ml-py" not in out
    assert "GPU 0" not in out


def test_a_fit_that_fails_at_once_is_two_lines_and_its_traceback(kip, capsys):
    """It once printed 40 lines of n/a ("No bottleneck found", "(1 readings)", a sampler cost of 49% of a
    core) and the error three times before the traceback."""
    res, r = run(kip, "make_model().fit(x[:, :3], y, epochs=2, verbose=0)", line="--no-history -v R")  # the wrong width
    assert isinstance(res.error_in_exec, ValueError) and r[0].failed and r[0].failed_at == "in epoch 1 at step 1"
    text = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    before = text[:text.index("-" * 20)].strip().splitlines()  # what comes before the traceback
    assert before[0] == f"{r[0].model} on the CPU failed in epoch 1 at step 1 (the error follows)."
    assert len([line for line in before if line and not line.startswith("-v R")]) == 1 and not any(word in text for word in ("n/a", "Verdicts", "No bottleneck", "readings"))
    assert "ValueError" not in "\n".join(before)  # the error itself: once, in the traceback
    assert r[0].to_dict()["error"].startswith("ValueError")  # the data keeps it


def test_exception_in_fit_shows_incomplete_summary_and_reraises(kip, capsys):
    cell = '''
class Boom(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("boom at epoch 2")
model = make_model()
model.fit(x, y, epochs=5, verbose=0, callbacks=[Boom()])
'''
    res, r = run(kip, cell, line="-v R")
    captured = capsys.readouterr()
    assert isinstance(res.error_in_exec, RuntimeError)
    assert not r.complete and r.error == "RuntimeError: boom at epoch 2"
    assert not r[0].complete and len(r[0].epochs) == 2
    assert "fit" not in keras.Model.__dict__  # restored at once, not by the next test's teardown
    # the traceback shows the user's own line, and none of our frames
    text = re.sub(r"\x1b\[[0-9;]*m", "", captured.out + captured.err)
    # short: where it failed, then the user's exception once, with their traceback; no verdicts
    assert text.lstrip().startswith(f"{r[0].model} on the CPU failed at the end of epoch 2 (the error follows).\n")
    assert text.count("RuntimeError: boom at epoch 2") == 1 and "Verdicts" not in text and "n/a" not in text
    assert 'raise RuntimeError("boom at epoch 2")' in text
    assert "keras_loop.py" not in text and "magics.py" not in text


def test_ctrl_c_mid_epoch_stops_cleanly(kip):
    started = threading.Event()
    kip.user_ns["started"] = started
    cell = '''
class Signal(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            started.set()
model = make_model()
model.fit(x, y, batch_size=1, epochs=200, verbose=0, callbacks=[Signal()])
'''
    sender = threading.Thread(target=lambda: started.wait(60) and signal.raise_signal(signal.SIGINT))
    sender.start()
    res, r = run(kip, cell)
    sender.join()
    assert isinstance(res.error_in_exec, KeyboardInterrupt)
    rep = r[0]
    assert not rep.complete and rep.error == "KeyboardInterrupt"
    assert 1 <= len(rep.epochs) < 200 and rep.total_steps >= 4
    assert rep.epochs[-1].complete is False
    assert "fit" not in keras.Model.__dict__  # restored after Ctrl-C too


def test_cell_without_fit_runs_and_says_so(kip, capsys):
    res = kip.run_cell("%%timed_fit\nanswer = 6 * 7")
    res.raise_error()
    assert kip.user_ns["answer"] == 42
    out = capsys.readouterr().out
    assert "No training step was seen in this cell" in out
    title, *said = [line.strip() for line in out.splitlines() if line.strip()]
    # the title and the one sentence (wrapped to the width)
    from colab_magic.report import NO_STEP_SEEN

    assert title == "%%timed_fit" and re.fullmatch(re.escape(NO_STEP_SEEN[:-1]) + r" \(it ran in [\d.]+ m?s\)\.", " ".join(said))


def test_value_of_last_expression_and_o(kip):
    assert kip.run_cell_magic("timed_fit", "-q", "1 + 1") == 2
    result = kip.run_cell_magic("timed_fit", "-q -o", "make_model().fit(x, y, epochs=1, verbose=0)")
    assert isinstance(result, TimedFitResult) and len(result) == 1


def test_json_and_html(kip, capsys, fake_nvml):
    fake_nvml([a100(name="<b>GPU</b>")])
    kip.run_cell_magic("timed_fit", "--json --interval 0.05", "make_model().fit(x, y, epochs=1, verbose=0)")
    data = json.loads(capsys.readouterr().out)
    assert data["reports"][0]["gpus"][0]["name"] == "<b>GPU</b>"
    assert set(data["reports"][0]["timeline"]) == {"host", "gpus", "epoch_ends"}
    result = kip.run_cell_magic("timed_fit", "-q -o --no-history --interval 0.05", "make_model().fit(x, y, epochs=1, verbose=0)")
    page = result._repr_html_()
    assert "<b>GPU</b>" not in page and "&lt;b&gt;GPU&lt;/b&gt;" in page
    # the headline, then verdicts (a GPU is present, the fit ran on the CPU) and training, then the
    # details collapsed: per epoch and hardware
    assert page.index('class="cm-answer"') < page.index('<p class="cm-title">Verdicts</p>') \
        < page.index("<caption>Training</caption>") < page.index("<details>") < page.index("<caption>Per epoch</caption>") \
        < page.index("<caption>Hardware: host (CPU) and GPUs</caption>") < page.index("</details>")
    assert page.count("<table>") == 3 and "GPU present but unused" in page[:page.index("<table>")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("--interval 0", "--interval must be between 0.05 and 3600 seconds"),
        ("--interval -1", "--interval must be between 0.05 and 3600 seconds"),
        ("--interval soon", "argument --interval: invalid float value"),
        ("-v 2fast", "-v needs a Python variable name"),
        ("--bogus", "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_are_usage_errors(kip, line, message):
    with pytest.raises(UsageError, match=message):
        kip.run_cell_magic("timed_fit", line, "pass")


def test_per_epoch_table_shows_time_outside_steps(kip, capsys):
    cell = '''
import time
class Pause(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.3)  # an expensive callback: time in the epoch but in no step
make_model().fit(x, y, epochs=2, verbose=0, callbacks=[Pause()])
'''
    kip.run_cell(f"%%timed_fit --no-history -v R\n{cell}").raise_error()
    assert "in steps (s)" not in capsys.readouterr().out  # the short answer by default
    out = str(dataclasses.replace(kip.user_ns["R"], detailed=True))  # -d
    header = next(line for line in out.splitlines() if " before " in line)
    assert header.split() == ["epoch", "time", "before", "in", "steps", "validation", "after", "callbacks", "steps",
                              "ms/step"]
    assert "time = before (the first step" in " ".join(out.split())
    for e in kip.user_ns["R"][0].epochs:
        outside = e.time_s - e.steps_s - e.val_s
        assert outside >= 0.3 and e.after_steps_s >= 0.3  # Pause sleeps after the epoch's last step
        row = next(line for line in out.splitlines() if line.strip().startswith(f"{e.epoch} "))
        epoch, time_s, before, in_steps, validation, after, callbacks = row.split()[:7]
        assert validation == "-" and after == f"{e.after_steps_s:.3f}"  # seconds, as the note says
        assert float(callbacks) == pytest.approx(0.3, abs=0.05)  # Pause, timed by name
        # the columns add up to the epoch (to the table's rounding)
        assert float(before) + float(in_steps) + float(after) == pytest.approx(float(time_s), abs=0.002)
