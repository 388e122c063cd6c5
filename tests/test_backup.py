"""--backup (Keras' BackupAndRestore, one folder per model) and the warning that a fit will outlast
its Colab runtime, on real (tiny) Keras training."""

import json
import time

import pytest
from IPython.core.error import UsageError

from colab_magic import runtime_left

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((64, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
def make_model(width=16):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
class Disconnect(keras.callbacks.Callback):
    """The runtime goes away as epoch 3 starts."""
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise ConnectionError("runtime disconnected")
'''

CUT = "model = make_model()\nmodel.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[Disconnect()])"
FULL = "model = make_model({width})\nmodel.fit(x, y, batch_size=16, epochs=5, verbose=0)"


def cell(ip, line, body):
    result = ip.run_cell(f"%%timed_fit -q -v R --no-history {line}\n{body}")
    return result, ip.user_ns.get("R")


def test_a_cut_fit_resumes_from_its_last_finished_epoch(kip, tmp_path):
    root = tmp_path / "backup"
    res, r = cell(kip, f"--backup {root}", CUT)
    assert isinstance(res.error_in_exec, ConnectionError)  # the user's exception, as usual
    folders = [p for p in root.iterdir() if p.name != ".locks"]  # the runs' locks are kept beside
    assert len(folders) == 1
    assert json.loads((folders[0] / "training_metadata.json").read_text())["epoch"] == 2
    assert r[0].backup_dir == str(folders[0]) and r[0].resumed_from_epoch is None

    res, r = cell(kip, f"--backup {root}", FULL.format(width=16))  # a fresh model, the same cell
    res.raise_error()
    rep = r[0]
    assert rep.resumed_from_epoch == 2
    assert [e.epoch for e in rep.epochs] == [3, 4, 5] and rep.total_steps == 3 * 4
    assert "(resumed from the backup after epoch 2)" in rep.headline
    assert r.to_dict()["reports"][0]["resumed_from_epoch"] == 2
    assert not folders[0].exists()  # a finished fit's backup is removed (Keras does it)
    # the restored weights are the ones trained: the loss goes on from where it was
    assert len(kip.user_ns["model"].history.history["loss"]) == 3


def test_another_model_never_resumes_from_a_backup(kip, tmp_path):
    root = tmp_path / "backup"
    cell(kip, f"--backup {root}", CUT)
    res, r = cell(kip, f"--backup {root}", FULL.format(width=32))  # the same layer types, other widths
    res.raise_error()
    assert r[0].resumed_from_epoch is None and len(r[0].epochs) == 5
    assert len([p for p in root.iterdir() if p.name != ".locks"]) == 1  # the cut model's backup is still there


def test_a_model_compiled_otherwise_never_resumes_from_a_backup(kip, tmp_path):
    """Same layers, another optimizer and loss: it used to say "resumed from the backup after epoch 3"
    and train 3 of its 6 epochs from the first model's weights."""
    root = tmp_path / "backup"
    stop_at_4 = ("class StopAt4(keras.callbacks.Callback):\n    def on_epoch_begin(self, epoch, logs=None):\n"
                 "        if epoch == 3:\n            raise ConnectionError('runtime disconnected')\n")
    body = ("model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation='relu'), "
            "keras.layers.Dense(1)])\nmodel.compile(optimizer={opt}, loss={loss!r})\n"
            "model.fit(x, y, batch_size=16, epochs=6, verbose=0{cb})")
    res, _ = cell(kip, f"--backup {root}", stop_at_4 + body.format(opt="keras.optimizers.SGD(0.01)", loss="mse",
                                                                   cb=", callbacks=[StopAt4()]"))
    assert isinstance(res.error_in_exec, ConnectionError)
    res, r = cell(kip, f"--backup {root}", body.format(opt="'adam'", loss="mae", cb=""))
    res.raise_error()
    assert r[0].resumed_from_epoch is None and len(r[0].epochs) == 6
    # the same layers compiled the same way do resume
    res, r = cell(kip, f"--backup {root}", body.format(opt="keras.optimizers.SGD(0.01)", loss="mse", cb=""))
    res.raise_error()
    assert r[0].resumed_from_epoch == 3 and len(r[0].epochs) == 3
    # and a learning rate of its own makes another run
    cell(kip, f"--backup {root}", stop_at_4 + body.format(opt="keras.optimizers.SGD(0.01)", loss="mse",
                                                            cb=", callbacks=[StopAt4()]"))
    res, r = cell(kip, f"--backup {root}", body.format(opt="keras.optimizers.SGD(0.05)", loss="mse", cb=""))
    res.raise_error()
    assert r[0].resumed_from_epoch is None


def test_the_users_own_backup_and_an_unbuilt_model_are_left_alone(kip, tmp_path):
    own = tmp_path / "own"
    res, r = cell(kip, f"--backup {tmp_path / 'ours'}",
                  f"model = make_model()\nmodel.fit(x, y, epochs=1, verbose=0, "
                  f"callbacks=[keras.callbacks.BackupAndRestore({str(own)!r})])")
    res.raise_error()
    assert r[0].backup_dir is None and "your own BackupAndRestore callback is used" in " ".join(r[0].notes)
    assert list((tmp_path / "ours").iterdir()) == []
    res, r = cell(kip, f"--backup {tmp_path / 'ours'}",
                  "model = keras.Sequential([keras.layers.Dense(1)])\nmodel.compile(loss='mse')\n"
                  "model.fit(x, y, epochs=1, verbose=0)")
    res.raise_error()  # Keras would refuse an unbuilt model: no backup, and the fit runs
    assert r[0].backup_dir is None and "--backup needs a model that is built before fit" in " ".join(r[0].notes)


def test_a_backup_folder_that_cannot_be_used_is_a_one_line_error_before_the_fit(kip, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for target, words in ((a_file, f"^--backup: {a_file} is a file, not a folder$"),
                          (a_file / "sub", f"^--backup: cannot write in {a_file / 'sub'} \\(Not a directory\\)$")):
        with pytest.raises(UsageError, match=words):
            kip.run_cell_magic("timed_fit", f"--backup {target}", "raise AssertionError('the cell ran')")


def test_the_default_backup_folder_follows_the_drive(kip, tmp_path, monkeypatch):
    monkeypatch.setenv("COLAB_MAGIC_DRIVE", str(tmp_path / "drive"))
    kip.run_line_magic("mount_drive", "-q")
    res, r = cell(kip, "--backup", CUT)
    assert r[0].backup_dir.startswith(str(tmp_path / "drive" / "MyDrive" / "colab_magic" / "backup"))


# --- will the fit outlast the runtime? --------------------------------------------------------------

def test_the_runtime_warning_at_its_boundary():
    hour = 3600.0
    assert runtime_left.warning(2 * hour, uptime=10 * hour) is None  # exactly what is left: fits
    text = runtime_left.warning(2 * hour + 1, uptime=10 * hour)
    assert text.startswith("This fit needs about 2 h 00 min more, but this Colab runtime may have only 2 h 00 min left")
    assert "it has run 10 h 00 min" in text and "--backup" in text
    assert runtime_left.warning(1.0, uptime=13 * hour) is not None  # past the limit: nothing left
    assert runtime_left.warning(None, 0.0) is None and runtime_left.warning(1.0, None) is None


def test_colab_warns_after_the_first_epoch_unless_backed_up(kip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLAB_GPU", "0")  # a Colab runtime (its CPU type)
    # the machine has been up for 11 h 59 min 59 s: any fit longer than a second outlasts it
    monkeypatch.setattr(runtime_left.psutil, "boot_time", lambda: time.time() - (12 * 3600 - 1))
    body = ("import time\nmodel = make_model()\nslow = keras.callbacks.LambdaCallback("
            "on_epoch_end=lambda e, l: time.sleep(0.6))\nmodel.fit(x, y, epochs=4, verbose=0, callbacks=[slow])")
    result = kip.run_cell(f"%%timed_fit -v R --no-history\n{body}")
    result.raise_error()
    notes = [n for n in kip.user_ns["R"].notes if n.startswith("This fit needs about")]
    assert len(notes) == 1  # said once, after the first epoch
    assert notes[0] in capsys.readouterr().err
    cell(kip, f"--backup {tmp_path / 'b'}", body)
    assert not any(n.startswith("This fit needs") for n in kip.user_ns["R"].notes)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB file system (tmpfs, as root): what a full Drive or disk looks like to --backup."""
    import os
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def test_a_backup_that_cannot_fit_on_the_disk_is_refused_before_the_fit(kip, small_disk):
    """The check used to pass (an empty temporary file fits), then h5py raised 'No space left on device'
    in the middle of the user's training."""
    from colab_magic.backup import backup_bytes

    root = small_disk / "backup"
    big = "model = make_model(20000)\nmodel.fit(x, y, batch_size=16, epochs=2, verbose=0)"
    res, r = cell(kip, f"--backup {root}", big)
    res.raise_error()  # the user's fit ran to its end
    need = backup_bytes(kip.user_ns["model"])
    assert need > 2 * 2**20 and r[0].backup_dir is None and len(r[0].epochs) == 2
    (note,) = [n for n in r[0].notes if n.startswith("--backup:")]
    assert f"a backup of this model needs about {need / 2**20:.1f} MiB, and {root} has" in note
    assert note.endswith("free; this fit ran without a backup.")
    # a model whose checkpoint fits is backed up on the same disk
    res, r = cell(kip, f"--backup {root}", FULL.format(width=16))
    res.raise_error()
    assert r[0].backup_dir is not None and not any(n.startswith("--backup:") for n in r[0].notes)


def _weights_and_metadata(folder):
    return folder / "latest.weights.h5", folder / "training_metadata.json"


def _cut_backup(kip, root):
    res, _ = cell(kip, f"--backup {root}", CUT)
    assert isinstance(res.error_in_exec, ConnectionError)
    (folder,) = [p for p in root.iterdir() if p.name != ".locks"]
    return folder


def test_a_torn_checkpoint_resumes_from_the_one_before_it(kip, tmp_path):
    """A checkpoint torn in mid-write (SIGKILL during a save) used to make every rerun raise h5py's
    'bad object header version number' until the folder was deleted by hand."""
    root = tmp_path / "backup"
    folder = _cut_backup(kip, root)  # saved after epochs 1 and 2: the latest says 2, the one before 1
    weights, metadata = _weights_and_metadata(folder)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # what a kill in mid-write leaves
    res, r = cell(kip, f"--backup {root}", FULL.format(width=16))
    res.raise_error()
    assert r[0].resumed_from_epoch == 1 and [e.epoch for e in r[0].epochs] == [2, 3, 4, 5]
    assert (f"--backup: the last checkpoint in {folder} was torn (the runtime stopped while it was written); "
            "this fit resumed from the one before it.") in r[0].notes


def test_torn_metadata_and_no_whole_checkpoint_set_the_folder_aside(kip, tmp_path):
    """A truncated training_metadata.json used to raise JSONDecodeError on every rerun."""
    root = tmp_path / "backup"
    folder = _cut_backup(kip, root)
    weights, metadata = _weights_and_metadata(folder)
    metadata.write_text('{"epoch": ')  # torn JSON
    before = folder / "latest.weights.h5.bkp"
    before.write_bytes(before.read_bytes()[:100])  # and the checkpoint before it torn too
    res, r = cell(kip, f"--backup {root}", FULL.format(width=16))
    res.raise_error()
    assert r[0].resumed_from_epoch is None and len(r[0].epochs) == 5
    (aside,) = [p for p in root.iterdir() if ".torn-" in p.name]
    (note,) = [n for n in r[0].notes if "set aside" in n]
    assert note == (f"--backup: the checkpoint in {folder} was torn and none before it was whole; it was set aside "
                    f"as {aside}, and this fit started afresh.")
    assert (aside / "training_metadata.json").read_text() == '{"epoch": '  # nothing of the user's deleted


CHILD = r'''
import sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "colab_magic")
ip.run_cell(sys.argv[2]).raise_error()
ip.run_cell("""
class Said(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(float(%r))
        print("saved", epoch + 1, flush=True)
import time
""" % sys.argv[3]).raise_error()
print("ready", flush=True)
ip.run_cell(f"%%timed_fit -q --no-history --backup {sys.argv[1]}\nmodel = make_model(64)\n"
            "model.fit(x, y, batch_size=4, epochs=400, verbose=0, callbacks=[Said()])").raise_error()
'''


def _child(root, pause_s):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), SETUP, str(pause_s)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def _wait_for(proc, text, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child ended before {text!r}")
        if line.startswith(text):
            return
    raise AssertionError(f"no {text!r} within {timeout} s")


def test_a_second_run_of_the_same_model_never_uses_the_first_ones_backup(kip, tmp_path):
    """A second process used to resume from the first one's in-progress weights (2 of 2 runs)."""
    root = tmp_path / "backup"
    proc = _child(root, 0.5)
    try:
        _wait_for(proc, "saved 2")  # the first run holds its folder, with two epochs saved
        res, r = cell(kip, f"--backup {root}", "model = make_model(64)\nmodel.fit(x, y, batch_size=4, epochs=2, verbose=0)")
        res.raise_error()
        assert r[0].resumed_from_epoch is None and r[0].backup_dir is None and len(r[0].epochs) == 2
        (note,) = [n for n in r[0].notes if n.startswith("--backup:")]
        assert "another run of this model (in this kernel or another process) is using its backup" in note
    finally:
        proc.kill()
        proc.wait(30)
    # once the other run is gone, its lock goes with it: the backup is this model's again (and resumes)
    res, r = cell(kip, f"--backup {root}", "model = make_model(64)\nmodel.fit(x, y, batch_size=4, epochs=60, verbose=0)")
    res.raise_error()
    assert r[0].resumed_from_epoch is not None and r[0].resumed_from_epoch >= 2


def test_two_threads_fitting_one_model_share_no_backup(kip, tmp_path):
    """Two threads in one cell used to make one user fit fail with h5py's 'unable to truncate a file
    which is already open'."""
    root = tmp_path / "backup"
    body = ("import threading\nerrors = []\n"
            "class Slow(keras.callbacks.Callback):\n    def on_epoch_end(self, epoch, logs=None):\n        time.sleep(0.1)\n"
            "def train():\n    try:\n        make_model().fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[Slow()])\n"
            "    except Exception as exc:\n        errors.append(exc)\n"
            "threads = [threading.Thread(target=train) for _ in range(2)]\n"
            "[t.start() for t in threads]\n[t.join() for t in threads]")
    kip.run_cell("import time").raise_error()
    res, r = cell(kip, f"--backup {root}", body)
    res.raise_error()
    assert kip.user_ns["errors"] == [] and len(r.reports) == 2 and all(rep.complete for rep in r.reports)
    with_backup = [rep for rep in r.reports if rep.backup_dir is not None]
    without = [rep for rep in r.reports if rep.backup_dir is None]
    assert len(with_backup) == 1 and len(without) == 1
    assert any("another run of this model" in n for n in without[0].notes)


def test_a_run_killed_at_any_moment_leaves_a_backup_the_next_run_can_use(kip, tmp_path):
    """SIGKILL in the middle of the saves (a checkpoint of every epoch, written all the time): the same
    cell run again trains to its end, whatever state the kill left."""
    import random

    root = tmp_path / "backup"
    proc = _child(root, 0.0)
    try:
        _wait_for(proc, "saved 3")
        time.sleep(random.uniform(0.0, 0.05))  # somewhere in a later epoch's save or steps
    finally:
        proc.kill()
        proc.wait(30)
    res, r = cell(kip, f"--backup {root}", "model = make_model(64)\nmodel.fit(x, y, batch_size=4, epochs=40, verbose=0)")
    res.raise_error()
    assert r[0].complete and r[0].epochs[-1].epoch == 40
    assert r[0].resumed_from_epoch is None or r[0].resumed_from_epoch >= 2
