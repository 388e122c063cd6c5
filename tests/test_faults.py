"""Faults and bad input: the user's exception always wins, our own failures are notes or one-line
errors, and a measured result is never dropped. Real files, FIFOs and threads; fake NVML only."""

import os
import re
import sys
import threading
import time

import pytest
from IPython.core.error import UsageError

from colab_magic import history, nvml
from tests.fake_pynvml import FakeNvml, a100, t4

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((128, 8), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
def make_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model
'''
FIT = "make_model().fit(x, y, batch_size=32, epochs=1, verbose=0)"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def text(capsys):
    captured = capsys.readouterr()
    return ANSI.sub("", captured.out + captured.err)


# --- the user's exception wins --------------------------------------------------------------------


def test_a_plot_that_cannot_be_saved_does_not_replace_the_users_exception(kip, tmp_path, capsys):
    res = kip.run_cell(f"%%timed_fit --no-history -v R --plot-file {tmp_path / 'timeline.nosuchformat'}\n"
                       f"{FIT}\nraise ValueError('mine')")
    assert isinstance(res.error_in_exec, ValueError) and str(res.error_in_exec) == "mine"
    out = text(capsys)
    assert "Could not save the timeline" in out and f"{kip.user_ns['R'].reports[0].model} on the CPU" in out
    assert len(kip.user_ns["R"].reports) == 1


def test_a_plot_file_in_a_missing_folder_is_refused_before_the_cell_runs(kip, tmp_path):
    with pytest.raises(UsageError, match="the folder .* does not exist"):
        kip.run_cell_magic("timed_fit", f"--plot-file {tmp_path / 'none' / 't.png'}", "ran = True")
    assert "ran" not in kip.user_ns


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


def test_an_exception_whose_str_raises_still_comes_through(kip, capsys):
    kip.user_ns["Unprintable"] = Unprintable
    res = kip.run_cell("%%timed_fit --no-history -q -v R\nraise Unprintable()")
    assert type(res.error_in_exec) is Unprintable
    assert kip.user_ns["R"].error == "Unprintable: (its message could not be read)"
    cell = '''
class Boom(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Unprintable()
make_model().fit(x, y, epochs=2, verbose=0, callbacks=[Boom()])
'''
    res = kip.run_cell(f"%%timed_fit --no-history -v R\n{cell}")
    assert type(res.error_in_exec) is Unprintable
    report = kip.user_ns["R"][0]
    assert report.complete is False and report.error == "Unprintable: (its message could not be read)"
    assert f"{report.model} on the CPU failed at the end of epoch 1 (the error follows)." in text(capsys)


# --- the run history ------------------------------------------------------------------------------


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")


GOOD = ('{"id": "good0001", "time": "2026-11-26T10:00:00+00:00", "kind": "fit", "model": "m", "device": "CPU:0", '
        '"device_name": "CPU", "step_median_s": 0.01, "step_mean_s": 0.011, "steps_per_epoch": 10, '
        '"signature": {"layers": ["Dense"], "params": 9, "input_shape": [null, 8]}, "env": {"runtime": "r", "host": "h"}}')
MALFORMED = ['{"id": "bad00001", "env": "a string"}', '{"id": [1, 2]}', "[" * 100_000,
             '{"id": "bad00002", "step_mean_s": "fast"}', '"just a string"']


def test_malformed_records_are_skipped_with_one_warning(tmp_path):
    path = tmp_path / "runs.jsonl"
    write_lines(path, [MALFORMED[0], GOOD] + MALFORMED[1:])
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["good0001"]
    assert warnings == [f"skipped 5 lines in {path} that are not run records (torn writes or edits): lines 1, 3, 4, 5, 6"]


def test_many_unparseable_lines_give_one_warning(tmp_path):
    path = tmp_path / "runs.jsonl"
    write_lines(path, [GOOD] + ["not json"] * 5000)
    records, warnings = history.read(path)
    assert len(records) == 1 and len(warnings) == 1 and "skipped 5000 lines" in warnings[0] and "..." in warnings[0]


def test_fit_history_and_compare_survive_malformed_records(kip, tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    write_lines(path, [GOOD] + MALFORMED)
    kip.run_line_magic("fit_history", f"--history {path}")
    kip.run_line_magic("fit_history", f"--history {path} --compare")
    out = text(capsys)
    assert "good0001" in out and "skipped 5 lines" in out and "Traceback" not in out
    kip.run_cell(f"%%timed_fit --compare --steps 4 -q -v R --history {path}\n{FIT}").raise_error()
    result = kip.user_ns["R"]
    assert len(result.comparisons) == 1 and result.comparisons[0].runs[0].step_mean_s
    assert not any("--compare failed" in n for n in result.notes)


def unreadable_paths(tmp_path):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    fifo = tmp_path / "a_fifo"
    os.mkfifo(fifo)
    return {
        "folder": (str(folder), "is a folder"),
        "fifo": (str(fifo), "not a regular file"),
        "long name": (str(tmp_path / ("n" * 5000)), "Cannot open the run history"),
    }


@pytest.mark.parametrize("case", ["folder", "fifo", "long name"])
def test_unreadable_history_is_one_line_for_fit_history(kip, tmp_path, case):
    path, message = unreadable_paths(tmp_path)[case]
    done = []

    def call():  # in a thread, so that a FIFO that blocked would fail the test instead of hanging it
        try:
            kip.run_line_magic("fit_history", f"--history {path}")
        except UsageError as exc:
            done.append(str(exc))

    worker = threading.Thread(target=call)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "reading the history blocked"
    assert len(done) == 1 and message in done[0] and "\n" not in done[0]


def test_no_permission_to_read_the_history(kip, tmp_path, monkeypatch):
    # the tests run as root, which may read anything: the refusal comes from the OS call itself
    path = tmp_path / "runs.jsonl"
    path.write_text(GOOD + "\n")
    real_open = os.open

    def refuse(p, *a, **k):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(UsageError, match="No permission to read the run history"):
        kip.run_line_magic("fit_history", f"--history {path}")


def test_timed_fit_with_an_unusable_history_keeps_its_result(kip, tmp_path):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    kip.run_cell(f"%%timed_fit --compare --steps 4 -q -v R --history {folder}\n{FIT}").raise_error()
    result = kip.user_ns["R"]
    assert len(result.reports) == 1 and len(result.comparisons) == 1 and result.comparisons[0].runs
    assert any(n.startswith(f"Could not record this run in {folder}") for n in result.notes)
    assert any("run history could not be read" in n for n in result.comparisons[0].notes)


@pytest.mark.parametrize("value, message", [
    ("~nosuchuser_cm/runs.jsonl", "cannot expand '~nosuchuser_cm'"),
    ('""', "needs a path, not an empty string"),
    ("bad\x00name", "cannot contain a NUL byte"),
    ("bad\udcffname", "cannot encode"),
])
def test_bad_history_paths_are_refused_before_the_cell_runs(kip, value, message):
    with pytest.raises(UsageError, match=message):
        kip.run_cell_magic("timed_fit", f"--history {value}", "ran = True")
    assert "ran" not in kip.user_ns
    with pytest.raises(UsageError, match=message):
        kip.run_line_magic("fit_history", f"--history {value}")


@pytest.mark.parametrize("value, message", [
    ("~nosuchuser_cm/d", "cannot expand"), ('""', "needs a path"), ("a\x00b", "NUL byte"),
])
def test_bad_local_drive_paths(ip, value, message):
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("mount_drive", f"--local {value}")


def test_a_symlink_loop_as_the_local_drive(ip, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UsageError, match="symbolic link that leads nowhere"):
        ip.run_line_magic("mount_drive", f"--local {loop}")


# --- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("magic, kind", [("timed_fit", "cell"), ("fit_history", "line"), ("device_info", "line"),
                                         ("mount_drive", "line")])
def test_unbalanced_quotes_are_a_one_line_error(ip, capsys, magic, kind):
    line = "%" * (2 if kind == "cell" else 1) + f'{magic} --history "no end' + ("\npass" if kind == "cell" else "")
    ip.run_cell(line)
    lines = [entry for entry in text(capsys).splitlines() if entry.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError: cannot read the arguments: No closing quotation")


@pytest.mark.parametrize("line, message", [
    ("--interval inf", "between 0.05 and 3600"), ("--interval 1e-9", "between 0.05 and 3600"),
    ("--interval 0.049", "between 0.05 and 3600"), ("--interval 3601", "between 0.05 and 3600"),
    ("--interval nan", "between 0.05 and 3600"),
    ("-v print", "would hide Python's built-in 'print'"), ("-v class", "needs a Python variable name"),
])
def test_bad_values_are_refused(kip, line, message):
    with pytest.raises(UsageError, match=message):
        kip.run_cell_magic("timed_fit", line, "pass")


@pytest.mark.parametrize("name", ["__builtins__", "__name__", "__doc__", "get_ipython", "In", "Out", "exit", "quit",
                                  "_", "__", "___", "_i", "_ii", "_iii", "_i3", "_7", "_oh", "_ih", "_dh"])
def test_names_python_or_ipython_keep_are_refused(kip, ip, name, tmp_path):
    """-v __builtins__ used to be accepted, and every later cell broke (len() looked up in our result)."""
    keep = {n: kip.user_ns[n] for n in ("__builtins__", "In", "Out", "get_ipython") if n in kip.user_ns}
    expected = f"-v {name} is a name Python or IPython keeps for itself: choose another name"
    with pytest.raises(UsageError) as err:
        kip.run_cell_magic("timed_fit", f"-q --no-history -v {name}", "pass")
    assert str(err.value) == expected
    with pytest.raises(UsageError, match=f"^--var {name} is a name Python or IPython keeps"):
        ip.run_line_magic("mount_drive", f"--local {tmp_path} --var {name}")
    assert all(kip.user_ns[n] is value for n, value in keep.items())
    kip.run_cell("assert len([1]) == 1").raise_error()  # later cells still work
    for allowed in ("_x", "_1a", "my__name__x"):  # private names of the user's own are fine
        kip.run_cell(f"%%timed_fit -q --no-history -v {allowed}\npass").raise_error()
        assert allowed in kip.user_ns
        del kip.user_ns[allowed]


def test_interval_bounds_are_accepted(kip):
    for value in ("0.05", "3600"):
        kip.run_cell(f"%%timed_fit --no-history -q --interval {value}\npass").raise_error()


def test_a_replaced_variable_is_said(kip, ip, tmp_path, capsys):
    kip.user_ns["R"] = "the user's own"
    kip.run_cell(f"%%timed_fit --no-history -q -v R\n{FIT}").raise_error()
    assert "-v R: replaced the variable that had that name." in kip.user_ns["R"].notes
    kip.run_cell(f"%%timed_fit --no-history -q -v R\n{FIT}").raise_error()  # our own earlier result: said too
    assert any(n.startswith("-v R: replaced") for n in kip.user_ns["R"].notes)
    ip.user_ns["DRIVE"] = "something else"
    ip.run_line_magic("mount_drive", f"--local {tmp_path}")
    assert "(this replaced the earlier value of DRIVE)" in text(capsys)
    with pytest.raises(UsageError, match="built-in 'len'"):
        ip.run_line_magic("mount_drive", f"--local {tmp_path} --var len")


def test_quoted_device_names_are_accepted(kip):
    kip.run_cell(f"%%timed_fit --compare --steps 4 --devices 'cpu:0' --no-history -q -v R\n{FIT}").raise_error()
    (comparison,) = kip.user_ns["R"].comparisons
    assert [r.device for r in comparison.runs] == ["CPU:0"] and comparison.runs[0].error is None


def test_no_steps_and_a_fit_that_fails_on_its_arguments(kip, capsys):
    kip.run_cell("%%timed_fit --no-history -v R\nmake_model().fit(x, y, epochs=0, verbose=0)").raise_error()
    assert "No training step ran (epochs or steps_per_epoch was 0" in text(capsys)
    res = kip.run_cell("%%timed_fit --no-history -v R\nmake_model().fit(x, y, epochz=2)")
    assert isinstance(res.error_in_exec, TypeError)
    out = text(capsys)
    assert "No training step was seen" in out and "The cell stopped: TypeError" in out


# --- NVML misbehaving -----------------------------------------------------------------------------


def broken_pynvml(tmp_path, monkeypatch, source):
    (tmp_path / "pynvml.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)


def device_info_text(ip, capsys):
    ip.run_line_magic("device_info", "")
    out = text(capsys)
    assert "Traceback" not in out and "Host" in out and "RAM used" in out
    return next(line for line in out.splitlines() if line.strip().startswith("none"))


def test_pynvml_that_fails_to_import(ip, tmp_path, monkeypatch, capsys):
    broken_pynvml(tmp_path, monkeypatch, "raise OSError('libnvidia-ml.so: wrong ELF class')\n")
    assert "nvidia-ml-py could not be imported (OSError: libnvidia-ml.so: wrong ELF class)" in device_info_text(ip, capsys)


def test_pynvml_without_nvmlerror(ip, tmp_path, monkeypatch, capsys):
    broken_pynvml(tmp_path, monkeypatch, "def nvmlInit():\n    pass\n")
    assert "not nvidia-ml-py (it has no NVMLError)" in device_info_text(ip, capsys)


def test_nvml_init_raising_something_else(ip, monkeypatch, capsys):
    fake = FakeNvml([a100()])

    def init():
        raise RuntimeError("driver and library versions differ")

    fake.module.nvmlInit = init
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    assert "NVML could not be loaded (RuntimeError: driver and library versions differ)" in device_info_text(ip, capsys)


def test_a_metric_call_raising_typeerror_and_a_shutdown_raising_oserror(ip, kip, monkeypatch, capsys):
    fake = FakeNvml([a100(), t4()])

    def bad_power(handle):
        raise TypeError("c_uint expected")

    def bad_shutdown():
        raise OSError("shutdown failed")

    fake.module.nvmlDeviceGetPowerUsage = bad_power
    fake.module.nvmlShutdown = bad_shutdown
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    info = ip.run_line_magic("device_info", "-o -q")
    assert [g.name for g in info.gpus] == ["NVIDIA A100-SXM4-40GB", "Tesla T4"] and info.gpus[0].power_w is None
    kip.run_cell(f"%%timed_fit --no-history -q -v R\n{FIT}").raise_error()
    out = text(capsys)
    assert "Traceback" not in out and "Exception in thread" not in out and not nvml.active()
    assert kip.user_ns["R"][0].gpus[0].power_mean_w is None


def test_a_gpu_that_supports_no_metric_says_so(kip, monkeypatch):
    fake = FakeNvml([t4(unsupported={"nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUtilizationRates",
                                      "nvmlDeviceGetPowerUsage", "nvmlDeviceGetSamples", "nvmlDeviceGetMigMode"})])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    kip.run_cell(f"%%timed_fit --no-history -q -v R --interval 0.05\n{FIT}").raise_error()
    notes = kip.user_ns["R"][0].notes
    assert "GPU 0 reports no metrics through NVML (every reading was refused)." in notes
    assert not any("stopped answering" in n for n in notes)


# --- fits in other threads ------------------------------------------------------------------------


def test_a_fit_still_running_in_another_thread_is_reported_and_its_sampler_stopped(kip):
    stop = threading.Event()
    kip.user_ns["stop"] = stop
    cell = '''
import threading, time
class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.01)
        if stop.is_set():
            self.model.stop_training = True
trainer = threading.Thread(target=lambda: make_model().fit(x, y, batch_size=8, epochs=1000, verbose=0, callbacks=[Slow()]))
trainer.start()
time.sleep(1.0)
'''
    try:
        kip.run_cell(f"%%timed_fit --no-history -q -v R\n{cell}").raise_error()
        (report,) = kip.user_ns["R"].reports
        assert report.index == 1 and report.complete is False
        assert report.error == "still running in another thread when the cell ended" and report.total_steps > 0
        assert not any(t.name == "colab_magic-sampler" for t in threading.enumerate())
        assert len(kip.user_ns["R"].reports) == 1  # nothing added when the fit ends later
    finally:
        stop.set()
        kip.user_ns["trainer"].join(30)
    time.sleep(0.1)
    assert len(kip.user_ns["R"].reports) == 1


def test_fits_in_parallel_threads_are_numbered_apart(kip):
    cell = '''
import threading
fits = [threading.Thread(target=lambda: make_model().fit(x, y, batch_size=16, epochs=2, verbose=0)) for _ in range(2)]
[t.start() for t in fits]
[t.join() for t in fits]
'''
    kip.run_cell(f"%%timed_fit --no-history -q -v R\n{cell}").raise_error()
    assert sorted(r.index for r in kip.user_ns["R"].reports) == [1, 2]
    assert all(r.complete for r in kip.user_ns["R"].reports)


def test_mistakes_get_help_in_the_same_line(kip, ip):
    """--comapre got "unrecognized arguments" alone; --budget 10% was refused though the help says the
    budget is in % of your epoch; %%timed_fit? showed its usage as %timed_fit."""
    with pytest.raises(UsageError) as err:
        kip.run_cell_magic("timed_fit", "--comapre", "pass")
    assert str(err.value) == "unrecognized arguments: --comapre; did you mean --compare?"
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("fit_history", "--clustr")
    assert str(err.value) == "unrecognized arguments: --clustr; did you mean --cluster?"
    with pytest.raises(UsageError) as err:  # nothing close: no guess
        kip.run_cell_magic("timed_fit", "--xyzzy", "pass")
    assert str(err.value) == "unrecognized arguments: --xyzzy"
    kip.run_cell("%%timed_fit -q --no-history --compare --budget 10% -v R\npass").raise_error()
    with pytest.raises(UsageError, match="^--budget must be a percentage of an epoch"):
        kip.run_cell_magic("timed_fit", "--compare --budget 0%", "pass")
    help_text = ip.find_cell_magic("timed_fit").__doc__
    assert "\n  %%timed_fit [--interval SECONDS]" in help_text and "\n  %timed_fit [" not in help_text
    assert "\n  %device_info [" in ip.find_line_magic("device_info").__doc__
