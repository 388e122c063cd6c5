"""%%timed_fit on the JAX backend (a fresh interpreter each: Keras picks its backend at import).

JAX is thread-safe in Keras' eyes, so Keras dispatches batch-end hooks on worker threads when every
callback allows it. The step timer must allow it (or training loses its asynchronous dispatch) and
still count every step right.
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")
pytestmark = pytest.mark.keras

SCRIPT = r'''
import json, threading
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "colab_magic")
ip.run_cell("""
import numpy as np, keras, threading
x = np.random.default_rng(0).random((320, 8), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
class Where(keras.callbacks.Callback):
    async_safe = True
    threads = set()
    def on_train_batch_end(self, batch, logs=None):
        Where.threads.add(threading.current_thread().name)
""").raise_error()
res = ip.run_cell("""%%timed_fit -q -v R
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", steps_per_execution=SPE)
history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[Where()])
""".replace("SPE", SPE_VALUE))
res.raise_error()
rep = ip.user_ns["R"][0]
print(json.dumps({
    "backend": rep.backend, "device": rep.device, "total_steps": rep.total_steps, "n": rep.step["n"],
    "epoch_steps": [e["steps"] for e in rep.epochs], "steps_s": sum(e["steps_s"] for e in rep.epochs),
    "train_s": sum(e["train_s"] for e in rep.epochs), "threads": sorted(ip.user_ns["Where"].threads),
    "loss_epochs": len(ip.user_ns["history"].history["loss"]),
}))
'''


def run_backend(backend: str, spe: int = 1) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("SPE_VALUE", repr(str(spe)))], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_jax_keeps_async_dispatch_and_counts_every_step():
    r = run_backend("jax")
    assert r["backend"] == "jax" and r["device"] == "CPU:0"
    # batch-end hooks ran on Keras' worker threads: async dispatch was kept with our timer present
    assert r["threads"] and "MainThread" not in r["threads"]
    assert r["total_steps"] == 3 * 20 and r["epoch_steps"] == [20, 20, 20]
    assert r["n"] == 3 * 20 - 1
    assert 0 < r["steps_s"] <= r["train_s"]
    assert r["loss_epochs"] == 3


def test_jax_steps_per_execution():
    r = run_backend("jax", spe=4)
    assert r["total_steps"] == 3 * 20 and r["epoch_steps"] == [20, 20, 20]
    assert r["n"] == 3 * 20 // 4 - 1
