"""The history file itself, without Keras training: the exact line written, the file's mode, what the
reader accepts and refuses (with its exact words), and which runs stand for a model on each device."""

import dataclasses
import json
import os
import stat

import pytest

from colab_magic import environment, history
from colab_magic.run_summary import RunSummary


def rec(i, **extra):
    return {"id": f"r{i}", "time": f"2026-11-26T00:00:{i:02d}+00:00", "kind": "fit", "device": "CPU:0", **extra}


def test_a_record_is_one_compact_line_in_a_new_folder_readable_by_all(tmp_path):
    path = tmp_path / "a" / "b" / "runs.jsonl"  # folders made as needed
    history.append({"id": "x", "when": tmp_path, "n": 1.5}, path)  # a Path is written as its text
    assert path.read_bytes() == b'{"id":"x","when":"' + str(tmp_path).encode() + b'","n":1.5}\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_torn_last_line_is_ended_before_the_next_record(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b'{"id":"r1"}\n{"id":"tor')
    history.append(rec(2), path)
    assert path.read_bytes().splitlines()[1:] == [b'{"id":"tor', json.dumps(rec(2), separators=(",", ":")).encode()]
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["r1", "r2"]
    assert warnings == [f"skipped line 2 (not a run record: a torn write or an edit) in {path}"]


@pytest.mark.parametrize("line, kept", [
    (rec(1), True),
    (rec(1, model=None, step_median_s=None), True),
    (rec(1, model=3), False),  # text fields are text
    (rec(1, step_median_s="fast"), False),  # number fields are numbers
    (rec(1, step_median_s=True), False),  # and not booleans
    (rec(1, batch_size=32, steps_per_epoch=10.0), True),
    (rec(1, env="colab"), False),  # env and signature are objects
    (rec(1, signature=[1]), False),
    (rec(1, env={"runtime": "x"}, signature={"params": 3}), True),
    ([1, 2], False),
    ("text", False),
])
def test_what_counts_as_a_record(line, kept):
    assert history.is_record(line) is kept


def test_the_reader_counts_what_it_skips(tmp_path):
    path = tmp_path / "runs.jsonl"
    lines = [json.dumps(rec(0))] + ["not json"] * 6 + [json.dumps(rec(1)), "[" * 100_000, "", '{"id": "tor']
    path.write_text("\n".join(lines))
    records, warnings = history.read(path)
    assert [r["id"] for r in records] == ["r0", "r1"]
    assert warnings == [f"skipped 8 lines in {path} that are not run records (torn writes or edits): "
                        "lines 2, 3, 4, 5, 6, ..."]
    path.write_text(json.dumps(rec(0)) + "\n" + '{"id": "tor')
    assert history.read(path)[1] == [f"skipped a torn last line in {path}"]
    for count, shown in ((5, "lines 1, 2, 3, 4, 5"), (6, "lines 1, 2, 3, 4, 5, ...")):
        path.write_text("\n".join(["x"] * count) + "\n")
        assert history.read(path)[1] == [f"skipped {count} lines in {path} that are not run records (torn writes or "
                                         f"edits): {shown}"]
    path.write_text("\n".join(["x", "y"]))
    assert history.read(path) == ([], [f"skipped 2 lines in {path} that are not run records (torn writes or edits): lines 1, 2"])


def test_paths_that_are_not_a_history_say_so_in_one_line(tmp_path):
    assert history.read(tmp_path / "none.jsonl") == ([], [])
    with pytest.raises(history.HistoryError) as folder:
        history.read(tmp_path)
    assert str(folder.value) == f"The run history {tmp_path} is a folder; give a file path (e.g. {tmp_path / 'runs.jsonl'})."
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for action in (lambda: history.read(pipe), lambda: history.append(rec(1), pipe)):
        with pytest.raises(history.HistoryError) as err:
            action()  # and it does not block waiting for a writer
        assert str(err.value) == f"The run history {pipe} is not a regular file (a pipe or a device?)."
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.jsonl"
        locked.write_text(json.dumps(rec(1)) + "\n")
        locked.chmod(0)
        with pytest.raises(history.HistoryError, match=f"^No permission to read the run history {locked}.$"):
            history.read(locked)
    with pytest.raises(ValueError) as why:  # Python's own words, which change between versions
        os.open(tmp_path / "a\0b", os.O_RDONLY)
    with pytest.raises(history.HistoryError) as nul:
        history.read(tmp_path / "a\0b")
    assert str(nul.value) == f"Cannot open the run history {tmp_path / 'a'}\0b: {why.value}."
    with pytest.raises(history.HistoryError) as long_name:
        history.read(tmp_path / ("x" * 300))
    assert str(long_name.value) == f"Cannot open the run history {tmp_path / ('x' * 300)}: File name too long."


def run(device="GPU:0", name="T4", host="a", time="2026-11-26T00:00:01+00:00", kind="fit", sig="s1", step=0.01):
    r = RunSummary(device, kind=kind, name=name, step_median_s=step, env={"host": host}, time=time)
    r.recorded_signature_id = sig
    return r


def test_the_latest_run_of_a_model_on_each_device_and_machine():
    runs = [
        run(sig="other"),  # another model first: skipped, and the rest still looked at
        run(time="2026-11-26T00:00:01+00:00"),
        run(time="2026-11-26T00:00:02+00:00", kind="compare"),  # newer: it wins
        run(name="T4", host="b"),  # another machine: its own entry
        run(name="CPU", device="CPU:0", time="2026-11-26T00:00:03+00:00", kind="compare"),
        run(name="CPU", device="CPU:0", time="2026-11-26T00:00:03+00:00", kind="fit"),  # same time: the fit wins
        run(name="CPU", device="CPU:0", time="2026-11-26T00:00:03+00:00", kind="compare"),  # and keeps winning
        run(sig="other"),  # another model
        run(step=None, time="2026-11-26T00:00:09+00:00"),  # not timed: never chosen
    ]
    latest = history.latest_per_device(runs, "s1")
    assert [(r.name, r.env["host"], r.time[-8:-6], r.kind) for r in latest] == [
        ("T4", "a", "02", "compare"), ("T4", "b", "01", "fit"), ("CPU", "a", "03", "fit")]
    gpus = history.latest_per_device(runs, "s1", keep=lambda r: r.is_gpu)
    assert [(r.name, r.env["host"]) for r in gpus] == [("T4", "a"), ("T4", "b")]
    assert history.latest_per_device(runs, "nothing") == []
    same = [run(kind="fit"), run(kind="fit")]  # the same rank: the later record wins
    same[1].id = "later"
    assert history.latest_per_device(same, "s1")[0].id == "later"
    undated = [run(time="2026-11-26T00:00:05+00:00"), run(time=None)]  # a run without a time never wins
    assert history.latest_per_device(undated, "s1")[0].time == "2026-11-26T00:00:05+00:00"
    assert history.latest_per_device(undated[::-1], "s1")[0].time == "2026-11-26T00:00:05+00:00"
    # a run the filter leaves out does not end the search
    after = [run(name="CPU", device="CPU:0"), run(name="T4")]
    assert [r.name for r in history.latest_per_device(after, "s1", keep=lambda r: r.is_gpu)] == ["T4"]


def test_a_records_environment(monkeypatch):
    """The versions of the frameworks imported, and only of those (a record never imports one)."""
    import sys

    import keras

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    env = history.environment(environment.Runtime("colab", "Google Colab (GPU runtime)", "GPU"), ["Tesla T4"])
    assert env == {"runtime": "Google Colab (GPU runtime)", "runtime_kind": "colab", "colab_accelerator": "GPU",
                   "host": __import__("socket").gethostname(), "gpus": ["Tesla T4"],
                   "python": __import__("platform").python_version(), "keras": keras.__version__}
    monkeypatch.delitem(sys.modules, "keras")
    assert "keras" not in history.environment(environment.Runtime("colab", "Colab", "GPU"), [])
    assert "keras" not in sys.modules


def test_the_history_view_as_data(tmp_path):
    view = history.HistoryView(str(tmp_path), [rec(1, model="m")], compare=True, warnings=["w"], note="n")
    assert view.to_dict() == {"path": str(tmp_path), "compare": True, "records": [rec(1, model="m")],
                              "warnings": ["w"], "note": "n", "cluster": False, "verdict": None}


def test_select_names_runs_or_takes_the_newest_models_latest_per_device():
    records = [rec(1, model="old", signature_id="s0", step_median_s=0.02),
               rec(2, model="other", signature_id="s2", step_median_s=0.02),
               rec(4, model="m", signature_id="s1", step_median_s=0.01, device="GPU:0", device_name="T4",
                   env={"host": "b"}),
               rec(3, model="m", signature_id="s1", step_median_s=0.01, device="GPU:0", device_name="T4",
                   env={"host": "a"}),
               rec(5, model="m", signature_id="s1", step_median_s=0.05, device_name="CPU")]
    assert history.select(records, ["r3", "r1"]) == ([records[3], records[0]], None)
    with pytest.raises(KeyError, match="no run with id nope, gone in the history"):
        history.select(records, ["r1", "nope", "gone"])
    chosen, note = history.select(records, None)
    assert [r["id"] for r in chosen] == ["r5", "r3", "r4"]  # the newest model's runs: the CPU first, then by time
    assert note == "The latest run of m on each device and machine."
    assert history.select([], None) == ([], None)


def test_an_epochs_seconds_measured_or_projected():
    r = RunSummary("CPU:0", steps_per_epoch=100, step_mean_s=0.02, step_median_s=0.01)
    assert r.epoch_s() == (2.0, "projected")  # from the mean: an epoch is the sum of its steps
    assert r.epoch_s(50) == (1.0, "projected")
    r.epoch_mean_s = 2.5
    assert r.epoch_s() == (2.5, "measured") and r.epoch_s(100) == (2.5, "measured")
    assert r.epoch_s(50) == (1.0, "projected")  # another epoch length: the measured one does not apply
    r.projected_epoch_s, r.epoch_mean_s = 3.0, None
    assert r.epoch_s() == (3.0, "projected") and r.epoch_s(50) == (1.0, "projected")
    median_only = RunSummary("CPU:0", steps_per_epoch=10, step_median_s=0.5)
    assert median_only.epoch_s() == (5.0, "projected")
    assert RunSummary("CPU:0", step_mean_s=0.5).epoch_s() == (None, None)  # no epoch length
    assert RunSummary("CPU:0", steps_per_epoch=10).epoch_s() == (None, None)  # no step time


def test_speedup_from_the_means_else_the_medians():
    cpu = RunSummary("CPU:0", step_mean_s=0.08, step_median_s=0.06)
    gpu = RunSummary("GPU:0", step_mean_s=0.01, step_median_s=0.02)
    assert gpu.speedup_over(cpu) == 8.0
    old_gpu = RunSummary("GPU:0", step_median_s=0.02)  # a record from before the mean was kept
    assert old_gpu.speedup_over(cpu) == 3.0
    assert RunSummary("GPU:0").speedup_over(cpu) is None
    assert gpu.speedup_over(RunSummary("CPU:0")) is None
    assert (gpu.is_gpu, gpu.is_cpu, cpu.is_gpu, cpu.is_cpu) == (True, False, False, True)


def test_a_record_with_stray_keys_or_none_reads_safely():
    odd = {"id": "x", "source": "hand-edited", "report": {"a": 1}, "name": "N", "recorded_signature_id": "zz",
           "signature_id": "s9", "time": "t"}
    run = RunSummary.from_record(odd)  # a stray key never overrides what the reader sets itself
    assert (run.device, run.kind, run.name, run.report) == ("?", "?", None, None)
    assert run.source == "history: ? on ?, t" and run.recorded_signature_id == "s9" and run.id == "x"
    assert RunSummary.from_record({"recorded_signature_id": "zz"}).recorded_signature_id is None


def test_to_dict_of_a_result_with_a_comparison():
    from colab_magic.run_summary import Comparison
    from tests import builders

    report = builders.report(device="GPU:0", gpus=[builders.gpu()], step=0.01, epochs=[],
                             input_wait=builders.input_wait(0.1), notes=["a note"])
    report = dataclasses.replace(report, timeline_png=b"\x89PNG...")
    comparison = Comparison(model="m", steps=10, steps_per_epoch=100, batch_size=32,
                            runs=[RunSummary("CPU:0", step_mean_s=0.02), RunSummary("GPU:0", step_mean_s=0.01)],
                            notes=["n"])
    comparison.add_speedups()
    result = dataclasses.replace(builders.result([report]), comparisons=[comparison], runtime="colab",
                                 history_path="/h", notes=["cell note"])
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d) == {"headline", "runtime", "cell_s", "complete", "error", "notes", "reports", "comparisons",
                      "whatifs", "history_path"}
    assert (d["runtime"], d["cell_s"], d["complete"], d["error"], d["notes"], d["history_path"]) == (
        "colab", 1.0, True, None, ["cell note"], "/h")
    assert d["headline"] == result.headline
    (r,) = d["reports"]
    assert "timeline_png" not in r and r["gpus"][0]["name"] == "A100" and r["step"]["median"] == 0.01
    assert r["input_wait"]["wait_share"] == 0.1 and r["host"]["logical_cores"] == 8 and r["epochs"] == []
    assert r["sampler"]["ticks"] == 200 and r["findings"] == [] and r["device"] == "GPU:0"
    assert r["notes"] == ["a note"] and r["flops_note"] is None  # plain lists kept, and the fields after the PNG
    (c,) = d["comparisons"]
    assert c["notes"] == ["n"] and [run["device"] for run in c["runs"]] == ["CPU:0", "GPU:0"]
    assert [run["speedup"] for run in c["runs"]] == [1.0, 2.0] and c["runs"][1]["util_mean"] is None
    assert (c["model"], c["steps"], c["steps_per_epoch"], c["batch_size"]) == ("m", 10, 100, 32)
    assert c["runs"][0]["signature"] is None and c["runs"][0]["report"] is None


def test_a_run_with_its_signature_and_report_as_data():
    from colab_magic.parts import ModelSignature
    from tests import builders

    signature = ModelSignature(["Dense"], 10, [None, 4])
    run = RunSummary("GPU:0", kind="compare", signature=signature, report=builders.report(step=0.01))
    d = run.to_dict()
    assert d["signature"] == signature.to_dict() and d["report"]["step"]["median"] == 0.01
    assert "report" in d and isinstance(d["report"], dict)
    record = run.to_record({})
    assert record["signature"] == signature.to_dict() and record["signature_id"] == signature.id
    assert RunSummary.from_record(json.loads(json.dumps(record))).signature == signature


def test_a_run_summary_from_a_report_keeps_the_report_and_its_signature():
    from colab_magic.parts import ModelSignature
    from tests import builders

    report = builders.report(device=None, step=0.01, complete=False, error="boom",
                             signature=ModelSignature(["Dense"], 3, [None, 1]))
    run = RunSummary.from_report(report)
    assert run.report is report and run.signature is report.signature and run.complete is False
    assert (run.device, run.name) == ("?", None)  # nowhere known: neither a GPU nor the CPU
