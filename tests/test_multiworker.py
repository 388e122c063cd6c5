"""tf.distribute.MultiWorkerMirroredStrategy under Keras 3, for real: two TensorFlow processes on
localhost (TF_CONFIG), each running its fit under %%timed_fit. The fit fails in Keras itself
(keras-team/keras#20585); the user's exception is raised as usual and the summary says why, in one note."""

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.keras

WORKER = r'''
import json, os, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "colab_magic")
cell = """%%timed_fit -q -v R --no-history
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
ds = tf.data.Dataset.from_tensor_slices((np.zeros((64, 4), "float32"), np.zeros((64, 1), "float32"))).batch(8)
model.fit(ds, epochs=1, verbose=0)
"""
result = ip.run_cell(cell)
r = ip.user_ns.get("R")
print("RESULT " + json.dumps({"raised": type(result.error_in_exec).__name__,
                              "notes": r.notes if r is not None else None}))
'''


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multiworker_mirrored_strategy_failure_is_explained(tmp_path):
    workers = [f"localhost:{p}" for p in free_ports(2)]
    procs = []
    try:
        for i in range(2):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                       TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}))
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=tmp_path, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:  # nothing left running, whatever happened
            if p.poll() is None:
                p.kill()
                p.wait()
    for out in outputs:
        line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
        assert line is not None, out[-3000:]
        got = json.loads(line[len("RESULT "):])
        assert got["raised"] == "ValueError"  # the user's exception, raised as usual
        notes = [n for n in got["notes"] if "MultiWorkerMirroredStrategy" in n]
        assert len(notes) == 1 and "keras-team/keras#20585" in notes[0] and "keras.distribution" in notes[0]
