"""%fit_history --cluster from records: the processes of one run, in process order, and the straggler
rule at its boundaries."""

import pytest
from IPython.core.error import UsageError

from colab_magic import history
from colab_magic.run_summary import RunSummary


def rec(task, run="r1", workers=2, cpu=40.0, gpu=None, wait=None, host=None, kind="fit", **kw):
    return {"id": f"{run}-{task}", "kind": kind, "model": "m", "device": "CPU:0", "step_median_s": 0.01,
            "cpu_util_mean": cpu, "gpu_util_mean": gpu, "input_wait_share": wait,
            "env": {"host": host or f"h{task}"},
            "cluster": {"task_index": task, "workers": workers, "run": run, "local_devices": [f"CPU:{task}"]}, **kw}


def test_the_latest_run_or_a_named_one_in_process_order():
    records = [rec(1, run="old"), rec(0, run="old"), {"id": "x", "kind": "fit", "device": "CPU:0"},
               rec(1), rec(0), rec(0, kind="compare")]
    chosen, note = history.select_cluster(records)
    assert [r["id"] for r in chosen] == ["r1-0", "r1-1"] and note == "Run r1: 2 of 2 processes recorded."
    chosen, _ = history.select_cluster(records, "old")
    assert [r["id"] for r in chosen] == ["old-0", "old-1"]
    with pytest.raises(KeyError, match="no multi-process run nope in the history"):
        history.select_cluster(records, "nope")
    with pytest.raises(KeyError, match="no multi-process run in the history \\(records of keras.distribution"):
        history.select_cluster([{"id": "x", "kind": "fit"}])


def runs(*records):
    return [RunSummary.from_record(r) for r in records]


def test_the_straggler_at_its_boundaries():
    # host CPU: 20 points above the others' median stands out, 19.9 does not
    assert history.straggler(runs(rec(0, cpu=40.0), rec(1, cpu=60.0))).startswith(
        "Likely straggler: process 1's host CPU (60% against 40% on the others)")
    assert history.straggler(runs(rec(0, cpu=40.0), rec(1, cpu=59.9))).startswith("No process stands out")
    # the median of the others, not their mean: one idle process does not make a busy one stand out
    # (others 10, 50, 55: median 50, 15 points below 65; their mean, 38.3, would be 26.7 below)
    four = runs(rec(0, cpu=10.0), rec(1, cpu=50.0), rec(2, cpu=55.0), rec(3, cpu=65.0))
    assert history.straggler(four).startswith("No process stands out")
    # input wait: 10% of a step more than the others
    text = history.straggler(runs(rec(0, wait=0.05), rec(1, wait=0.15)))
    assert "process 1's input wait (15% of a step against 5% of a step on the others)" in text
    assert history.straggler(runs(rec(0, wait=0.05), rec(1, wait=0.149))).startswith("No process stands out")
    # GPU utilisation, with one process's GPU unknown: compared among those known
    text = history.straggler(runs(rec(0, gpu=90.0), rec(1, gpu=60.0), rec(2, gpu=None)))
    assert "process 0's GPU utilisation (90% against 60% on the others)" in text


def test_fit_history_cluster_in_text_and_bad_input(ip, tmp_path, capsys):
    import json

    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (rec(0, cpu=30.0), rec(1, cpu=90.0))))
    view = ip.run_line_magic("fit_history", f"--cluster --history {path} -o -q")
    assert view.cluster and [r.cluster["task_index"] for r in view.runs] == [0, 1]
    text = str(view)
    assert "process 0" in text and "process 1" in text and "Likely straggler: process 1's host CPU" in text
    assert view.to_dict()["verdict"].startswith("Likely straggler")
    capsys.readouterr()
    ip.run_line_magic("fit_history", f"--cluster --json --history {path}")
    data = json.loads(capsys.readouterr().out)
    assert data["cluster"] is True and [r["cluster"]["task_index"] for r in data["records"]] == [0, 1]
    assert data["verdict"] == view.verdict
    with pytest.raises(UsageError, match="^no multi-process run nope in the history$"):
        ip.run_line_magic("fit_history", f"--cluster nope --history {path}")
    with pytest.raises(UsageError, match="^--cluster and --compare don't go together$"):
        ip.run_line_magic("fit_history", f"--cluster --compare --history {path}")
