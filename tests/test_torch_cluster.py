"""Two real processes on localhost training one model with PyTorch's DistributedDataParallel (gloo on
the CPU), started by torchrun, each under %%timed_fit, into one history; then %fit_history --cluster.
A timeout and a kill of the whole process group in `finally`, so a hung process never outlives the test."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_two_torchrun_processes_one_run_in_one_history(tmp_path, ip):
    history_file = tmp_path / "runs.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(EXAMPLES / "torch_ddp_fit.py"), "--history", str(history_file)]
    proc = subprocess.Popen(command, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, HOME=str(tmp_path), OMP_NUM_THREADS="1"), start_new_session=True)
    try:
        out = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)  # torchrun and both workers
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    fits = [json.loads(line) for line in history_file.read_text().splitlines()]
    fits = [r for r in fits if r["kind"] == "fit"]
    assert len(fits) == 2
    clusters = [r["cluster"] for r in fits]
    assert sorted(c["task_index"] for c in clusters) == [0, 1]
    assert {c["workers"] for c in clusters} == {2} and len({c["run"] for c in clusters}) == 1
    assert all(c["coordinator"] and c["local_devices"] == ["CPU:0"] and c["local_processes"] == 2 for c in clusters)
    # each process trains on its half of 512 samples, batch 32: 8 steps an epoch, 2 epochs; the model is
    # named inside its DistributedDataParallel wrapper
    assert {r["total_steps"] for r in fits} == {16} and {r["batch_size"] for r in fits} == {32}
    assert {r["model"] for r in fits} == {"Sequential"} and {r["backend"] for r in fits} == {"torch"}
    assert {r["loop"] for r in fits} == {"torch"}  # a PyTorch loop's record says so (a Keras fit on torch: "keras")
    view = ip.run_line_magic("fit_history", f"--cluster --history {history_file} -o -q")
    assert [r.cluster["task_index"] for r in view.runs] == [0, 1]
    assert view.note == f"Run {clusters[0]['run']}: 2 of 2 processes recorded."
    assert "process 0" in str(view) and "process 1" in str(view)
