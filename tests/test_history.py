"""The run history: crash-safe appends (real processes, a real SIGKILL), the reader, %fit_history."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from IPython.core.error import UsageError

from colab_magic import history

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rec(i, **extra):
    return {"id": f"r{i:05d}", "time": f"2026-11-26T00:00:{i % 60:02d}+00:00", "payload": "x" * 3000, **extra}


def test_append_and_read_back(tmp_path):
    path = tmp_path / "deep" / "runs.jsonl"
    for i in range(3):
        history.append(rec(i), path)
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["r00000", "r00001", "r00002"] and warnings == []
    assert path.read_bytes().count(b"\n") == 3


def test_missing_file_reads_as_empty(tmp_path):
    assert history.read(tmp_path / "none.jsonl") == ([], [])


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from colab_magic import history
    tag, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for i in range(n):
        history.append({{"id": f"{{tag}}{{i}}", "payload": tag * 5000}}, path)
    """
)


def test_two_kernels_appending_at_once_lose_nothing(tmp_path):
    path = tmp_path / "runs.jsonl"
    code = WRITER.format(root=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", code, tag, "150", str(path)]) for tag in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    records, warnings = history.read(path)
    assert warnings == []
    assert sorted(r["id"] for r in records) == sorted([f"a{i}" for i in range(150)] + [f"b{i}" for i in range(150)])
    assert all(r["payload"] == r["id"][0] * 5000 for r in records)  # no line mixes two writers


@pytest.mark.skipif(history.fcntl is None, reason="no flock on this platform")
def test_an_append_waits_while_another_writer_holds_the_lock(tmp_path):
    # Another kernel in the middle of a record written in two parts (as a large record on a network
    # file system can be): without the lock our append would land between the parts, end the half
    # line as torn, and the other kernel's record would be lost.
    path = tmp_path / "runs.jsonl"
    history.append(rec(0), path)
    other = (json.dumps(rec(1)) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    history.fcntl.flock(fd, history.fcntl.LOCK_EX)
    done = threading.Event()
    appender = threading.Thread(target=lambda: (history.append(rec(2), path), done.set()))
    try:
        os.write(fd, other[:1000])
        appender.start()
        assert not done.wait(0.5)  # blocked: the record is not written while the lock is held
        os.write(fd, other[1000:])
    finally:
        history.fcntl.flock(fd, history.fcntl.LOCK_UN)
        os.close(fd)
    appender.join(10)
    assert done.is_set()
    records, warnings = history.read(path)
    assert warnings == [] and [r["id"] for r in records] == ["r00000", "r00001", "r00002"]


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from colab_magic import history
    path = sys.argv[1]
    real_write = os.write
    def write_half_then_die(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of the record
    history.os.write = write_half_then_die
    history.append({{"id": "torn", "payload": "z" * 4000}}, path)
    """
)


def test_process_killed_mid_write_damages_no_earlier_record(tmp_path):
    path = tmp_path / "runs.jsonl"
    for i in range(3):
        history.append(rec(i), path)
    child = subprocess.run([sys.executable, "-c", KILLED.format(root=ROOT), str(path)], timeout=60)
    assert child.returncode == -9
    assert not path.read_bytes().endswith(b"\n")  # the torn line is really there
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["r00000", "r00001", "r00002"]
    assert warnings == [f"skipped a torn last line in {path}"]
    # the next append ends the torn line first, so the new record stands on its own
    history.append(rec(3), path)
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["r00000", "r00001", "r00002", "r00003"]
    assert warnings == [f"skipped line 4 (not a run record: a torn write or an edit) in {path}"]


def test_default_path_follows_the_drive(ip, tmp_path, private_home):
    assert history.default_path() == private_home / ".colab_magic" / "runs.jsonl"
    ip.run_line_magic("mount_drive", f"-q --local {tmp_path / 'd'}")
    assert history.default_path() == tmp_path / "d" / "MyDrive" / "colab_magic" / "runs.jsonl"


SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((128, 4), dtype=np.float32)
y = x.sum(axis=1)
def make_model(units=4):
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(1)], name=f"m{units}")
    m.compile(optimizer="sgd", loss="mse")
    return m
'''


@pytest.fixture(autouse=True)
def _keras_for_the_fits(request):
    # A skip per test, never one in the middle of the module (that would drop the tests above it).
    if request.node.get_closest_marker("keras"):
        pytest.importorskip("keras")


@pytest.mark.keras
def test_every_timed_fit_is_recorded_where_asked(ip, tmp_path, private_home):
    ip.run_cell(SETUP).raise_error()
    ip.run_cell("%%timed_fit -q\nmake_model().fit(x, y, epochs=1, verbose=0)\nmake_model(8).fit(x, y, epochs=2, verbose=0)").raise_error()
    default = private_home / ".colab_magic" / "runs.jsonl"
    records, _ = history.read(default)
    assert [(r["model"], r["kind"], r["device"]) for r in records] == [("m4", "fit", "CPU:0"), ("m8", "fit", "CPU:0")]
    r = records[1]
    assert r["signature"] == {"layers": ["Dense", "Dense"], "params": 4 * 8 + 8 + 8 + 1, "input_shape": [None, 4]}
    assert r["batch_size"] == 32 and r["steps_per_epoch"] == 4 and r["backend"] == "tensorflow"
    assert r["step_median_s"] > 0 and r["epoch_mean_s"] > 0 and r["env"]["keras"]
    assert r["signature_id"] != records[0]["signature_id"]
    ip.run_cell("%%timed_fit -q --no-history\nmake_model().fit(x, y, epochs=1, verbose=0)").raise_error()
    assert len(history.read(default)[0]) == 2
    elsewhere = tmp_path / "mine.jsonl"
    ip.run_cell(f"%%timed_fit -q --history {elsewhere}\nmake_model().fit(x, y, epochs=1, verbose=0)").raise_error()
    assert len(history.read(elsewhere)[0]) == 1
    ip.run_line_magic("mount_drive", f"-q --local {tmp_path / 'drive'}")
    ip.run_cell("%%timed_fit -q\nmake_model().fit(x, y, epochs=1, verbose=0)").raise_error()
    assert len(history.read(tmp_path / "drive" / "MyDrive" / "colab_magic" / "runs.jsonl")[0]) == 1


def _colab_runs(path):
    """Two earlier runs of one model on Colab (a CPU runtime, then a GPU runtime) and one of another model."""
    base = {"signature_id": "aaaa", "model": "cnn", "kind": "fit", "steps_per_epoch": 1563, "batch_size": 32,
            "samples_per_s": None, "signature": {"params": 122570}}
    history.append(dict(base, id="cpu1", time="2026-11-25T09:00:00+00:00", device="CPU:0", device_name="CPU",
                        step_median_s=0.09, step_p90_s=0.1, step_mean_s=0.1, epoch_mean_s=140.0,
                        env={"runtime": "Google Colab (CPU runtime)", "host": "vm-a"}), path)
    history.append(dict(base, id="gpu1", time="2026-11-25T10:00:00+00:00", device="GPU:0", device_name="Tesla T4",
                        step_median_s=0.0045, step_p90_s=0.005, step_mean_s=0.004, epoch_mean_s=7.0, gpu_util_mean=61.0,
                        env={"runtime": "Google Colab (GPU runtime)", "host": "vm-b"}), path)
    history.append(dict(base, id="oth1", signature_id="bbbb", model="other", time="2026-11-25T08:00:00+00:00",
                        device="CPU:0", device_name="CPU", step_median_s=0.01, env={"runtime": "x", "host": "vm-a"},
                        loop="torch"), path)


def test_fit_history_lists_and_compares_runs_across_runtimes(ip, tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    _colab_runs(path)
    ip.run_line_magic("fit_history", f"--history {path}")
    out = capsys.readouterr().out
    assert all(i in out for i in ("cpu1", "gpu1", "oth1")) and "Google Colab (GPU runtime) on vm-b" in out
    # a PyTorch loop is said as such; records without `loop` (written before it) are Keras fits
    flat = " ".join(out.split())
    assert flat.count("kind: fit; ") == 2 and flat.count("kind: fit, PyTorch loop; ") == 1, out
    view = ip.run_line_magic("fit_history", f"--history {path} -n 1 -o -q")
    assert [r["id"] for r in view.records] == ["oth1"]
    # the newest record is "other", so name the article's runs by id
    view = ip.run_line_magic("fit_history", f"--history {path} --compare cpu1 gpu1 -o")
    assert capsys.readouterr().out == ""  # -o: the returned view shows itself (here: no displayhook)
    out = str(view)
    assert [r["id"] for r in view.records] == ["cpu1", "gpu1"]
    speed = next(line for line in out.splitlines() if line.strip().startswith("speed-up vs CPU"))
    assert "1.0x" in speed and "25.0x" in speed  # from the mean steps (0.1 s / 4 ms), as --compare does
    epoch = next(line for line in out.splitlines() if line.strip().startswith("s/epoch"))
    assert "140.0 s (measured)" in epoch and "7.0 s (measured)" in epoch
    assert "GPU:0 (Tesla T4)" in out


def test_fit_history_compare_defaults_to_the_newest_model(ip, tmp_path):
    path = tmp_path / "runs.jsonl"
    _colab_runs(path)
    history.append({"id": "gpu2", "signature_id": "aaaa", "model": "cnn", "kind": "compare", "device": "GPU:0",
                    "device_name": "Tesla T4", "time": "2026-11-25T10:00:00+00:00", "step_median_s": 0.005,
                    "env": {"runtime": "Google Colab (GPU runtime)", "host": "vm-b"}}, path)
    view = ip.run_line_magic("fit_history", f"--history {path} --compare -o -q")
    # one run per device and machine; at the same time, the user's fit beats a --compare run
    assert [r["id"] for r in view.records] == ["cpu1", "gpu1"]


def test_fit_history_errors_and_warnings(ip, tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    ip.run_line_magic("fit_history", f"--history {path}")
    assert "No runs recorded yet." in capsys.readouterr().out
    _colab_runs(path)
    with open(path, "ab") as fh:
        fh.write(b'{"id": "half')
    ip.run_line_magic("fit_history", f"--history {path}")
    assert "skipped a torn last line" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no run with id nope"):
        ip.run_line_magic("fit_history", f"--history {path} --compare nope")
    with pytest.raises(UsageError, match="-n must be at least 1"):
        ip.run_line_magic("fit_history", "-n 0")
    ip.run_line_magic("fit_history", f"--history {path} --json")
    assert len(json.loads(capsys.readouterr().out)["records"]) == 3


def test_json_output_is_strict_json_when_a_record_holds_nan_or_infinity(ip, tmp_path, capsys):
    """Python's json writes NaN and Infinity, which no other JSON reader accepts: --json writes null."""
    path = tmp_path / "runs.jsonl"
    path.write_text('{"id": "a1", "time": "2026-12-01T00:00:00+00:00", "kind": "fit", "device": "CPU:0", '
                    '"step_median_s": NaN, "samples_per_s": Infinity, "speedup_interval": [1.0, -Infinity], '
                    '"env": {"x": NaN}}\n')
    capsys.readouterr()
    ip.run_line_magic("fit_history", f"--history {path} --json")
    out = capsys.readouterr().out

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    data = json.loads(out, parse_constant=refuse)
    (record,) = data["records"]
    assert record["step_median_s"] is None and record["samples_per_s"] is None
    assert record["speedup_interval"] == [1.0, None] and record["env"] == {"x": None}
    assert record["id"] == "a1"


def test_a_history_path_linked_to_another_kind_of_file_is_left_alone(tmp_path):
    """A symlink to the user's own file (here a script) used to get run records appended to it."""
    script = tmp_path / "train.py"
    script.write_text("print('the user's script')\n")
    link = tmp_path / "runs.jsonl"
    link.symlink_to(script)
    with pytest.raises(history.HistoryError, match="is a link to .*train.py, which holds something other than run"):
        history.append(rec(1), link)
    assert script.read_text() == "print('the user's script')\n"
    # a link to a history, or to an empty file, is written through as before
    real = tmp_path / "real.jsonl"
    history.append(rec(2), real)
    other = tmp_path / "other.jsonl"
    other.symlink_to(real)
    history.append(rec(3), other)
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    (tmp_path / "to_empty.jsonl").symlink_to(empty)
    history.append(rec(4), tmp_path / "to_empty.jsonl")
    assert [r["id"] for r in history.read(real)[0]] == ["r00002", "r00003"]
    assert [r["id"] for r in history.read(empty)[0]] == ["r00004"]


def test_a_huge_or_unencodable_model_name_is_listed_short_and_safe(ip, tmp_path, capsys):
    """A 10 MB model name took 37 s to list (wrapping one long word is quadratic); a lone surrogate
    replaced the whole listing with 'could not show the result (UnicodeEncodeError)'."""
    path = tmp_path / "runs.jsonl"
    base = {"time": "2026-12-01T00:00:00+00:00", "kind": "fit", "device": "CPU:0", "step_median_s": 0.01}
    with open(path, "w") as fh:
        fh.write(json.dumps({**base, "id": "big1", "model": "m" * 10_000_000}) + "\n")
        fh.write(json.dumps({**base, "id": "sur1", "model": "net\udc80x"}) + "\n")
    capsys.readouterr()
    ip.run_line_magic("fit_history", f"--history {path}")
    captured = capsys.readouterr()
    assert "could not show" not in captured.err
    assert "big1" in captured.out and "sur1" in captured.out and "net\\udc80x" in captured.out
    joined = "".join(captured.out.split())  # the long name is wrapped over lines
    assert "m" * 450 in joined and "m" * 600 not in joined
    assert len(captured.out) < 20_000
    view = ip.run_line_magic("fit_history", f"--history {path} -q -o")
    view._repr_html_().encode("utf-8")  # the notebook's rendering is encodable too
    assert view.records[0]["model"] == "m" * 10_000_000  # the data itself is kept whole


GOOD = {"time": "2026-12-01T00:00:00+00:00", "kind": "fit", "device": "CPU:0", "model": "net", "step_median_s": 0.01,
        "step_mean_s": 0.01, "signature": {"layers": ["Dense"], "params": 10, "input_shape": [None, 4]},
        "signature_id": "s1", "env": {"runtime": "jupyter", "host": "vm", "gpus": []},
        "cluster": {"task_index": 0, "workers": 2, "run": "r", "local_devices": ["CPU:0"], "coordinator": None}}


@pytest.mark.parametrize("name, bad, flags", [
    ("host as a list", {"env": {"host": ["a"]}}, "--compare"),
    ("task index as a list", {"cluster": {"task_index": [0], "run": "r"}}, "--cluster"),
    ("local devices as a number", {"cluster": {"task_index": 1, "workers": 2, "run": "r", "local_devices": 5}},
     "--cluster"),
    ("params as text", {"signature": {"params": "many"}}, ""),
    ("an interval of three", {"speedup_interval": [1, 2, 3]}, "--compare"),
    ("complete as text", {"complete": "yes"}, ""),
])
def test_a_record_bad_deep_inside_is_skipped_and_counted(ip, tmp_path, capsys, name, bad, flags):
    """Each of these single records once gave a traceback from inside the package."""
    path = tmp_path / "runs.jsonl"
    good = {**GOOD, "id": "good1"}
    other = {**GOOD, "id": "good2", "cluster": {**GOOD["cluster"], "task_index": 1}}
    lines = [json.dumps(good), json.dumps({**GOOD, "id": "bad1", **bad}), json.dumps(other)]
    path.write_text("\n".join(lines) + "\n")
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["good1", "good2"], name
    assert warnings == [f"skipped line 2 (not a run record: a torn write or an edit) in {path}"]
    capsys.readouterr()
    ip.run_line_magic("fit_history", f"--history {path} {flags}".strip())
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err and "could not show" not in captured.err
    assert "skipped line 2" in captured.out
