"""Two real processes on localhost training one model with Keras' distribution API (JAX on the CPU,
gloo collectives), each under %%timed_fit, into one history; then %fit_history --cluster. Timeouts and
a kill in `finally`, so a hung process never outlives the test."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.keras,
              pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed")]

EXAMPLES = Path(__file__).parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_one_run_in_one_history(tmp_path, ip):
    history_file = tmp_path / "runs.jsonl"
    launcher = [sys.executable, str(EXAMPLES / "launch_local.py"), "--processes", "2", "--port", str(free_port()),
                "--", sys.executable, str(EXAMPLES / "distributed_fit.py"), "--history", str(history_file)]
    proc = subprocess.Popen(launcher, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), start_new_session=True)
    try:
        out = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)  # the launcher and both workers
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    records = [json.loads(line) for line in history_file.read_text().splitlines()]
    fits = [r for r in records if r["kind"] == "fit"]
    assert len(fits) == 2
    clusters = [r["cluster"] for r in fits]
    assert sorted(c["task_index"] for c in clusters) == [0, 1]
    assert {c["workers"] for c in clusters} == {2} and len({c["run"] for c in clusters}) == 1
    assert all(len(c["local_devices"]) == 1 for c in clusters)
    # lock-step: the same global steps in each process, of the global batch
    assert {r["total_steps"] for r in fits} == {2 * 8} and {r["batch_size"] for r in fits} == {32}
    # the weights are replicated on both processes' devices: the first of them names the device, not the sharding
    assert {r["device"] for r in fits} == {"CPU:0"}
    view = ip.run_line_magic("fit_history", f"--cluster --history {history_file} -o -q")
    assert [r.cluster["task_index"] for r in view.runs] == [0, 1]
    assert view.note == f"Run {clusters[0]['run']}: 2 of 2 processes recorded."
    assert view.verdict.startswith(("Likely straggler", "No process stands out"))
    assert "process 0" in str(view) and "process 1" in str(view)
