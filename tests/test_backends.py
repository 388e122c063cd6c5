"""%%timed_fit and --compare on the JAX and torch backends, and under tf.distribute.MirroredStrategy
(a fresh interpreter each: Keras picks its backend at import, TensorFlow its devices at start-up).

JAX and torch are thread-safe in Keras' eyes, so Keras dispatches batch-end hooks on worker threads
when every callback allows it. The step timer must allow it (or training loses its asynchronous
dispatch) and still count every step right.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


pytestmark = pytest.mark.keras
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(not _has(name), reason=f"{name} not installed")) for name in ("jax", "torch")]

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
ip.run_cell("%%timed_fit --compare --steps 6 --no-history -q -v C\nmodel.fit(x, y, batch_size=16, epochs=1, verbose=0)").raise_error()
comparison = ip.user_ns["C"].comparisons[0]
rep = ip.user_ns["R"][0]
print(json.dumps({
    "backend": rep.backend, "device": rep.device, "total_steps": rep.total_steps, "n": rep.step.n,
    "epoch_steps": [e.steps for e in rep.epochs], "steps_s": sum(e.steps_s for e in rep.epochs),
    "train_s": sum(e.train_s for e in rep.epochs), "threads": sorted(ip.user_ns["Where"].threads),
    "loss_epochs": len(ip.user_ns["history"].history["loss"]),
    "compare": [(r.device, r.error, r.report.total_steps if r.report else None) for r in comparison.runs],
}))
'''


def run_backend(backend: str, spe: int = 1) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("SPE_VALUE", repr(str(spe)))], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_dispatch_kept_and_every_step_counted(backend):
    r = run_backend(backend)
    assert r["backend"] == backend and r["device"] == "CPU:0"
    # batch-end hooks ran on Keras' worker threads: async dispatch was kept with our timer present
    assert r["threads"] and "MainThread" not in r["threads"]
    assert r["total_steps"] == 3 * 20 and r["epoch_steps"] == [20, 20, 20]
    assert r["n"] == 3 * 20 - 1
    assert 0 < r["steps_s"] <= r["train_s"]
    assert r["loss_epochs"] == 3
    assert r["compare"] == [["CPU:0", None, 7]]  # --compare works on this backend too: --steps 6 timed after the window's first


@pytest.mark.parametrize("backend", BACKENDS[:1])  # torch's Keras trainer requires steps_per_execution = 1
def test_steps_per_execution(backend):
    r = run_backend(backend, spe=4)
    assert r["total_steps"] == 3 * 20 and r["epoch_steps"] == [20, 20, 20]
    assert r["n"] == 3 * 20 // 4 - 1


MIRRORED = r'''
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "colab_magic")
import dataclasses
ip.run_cell("""
import numpy as np, keras, tensorflow as tf
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
x = np.random.default_rng(0).random((512, 8), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
""").raise_error()
ip.run_cell("%%timed_fit -q --no-history -v R\nhistory = model.fit(x, y, batch_size=64, epochs=2, verbose=0)").raise_error()
rep = ip.user_ns["R"][0]
print(json.dumps({"replicas": ip.user_ns["strategy"].num_replicas_in_sync, "total_steps": rep.total_steps,
                  "epoch_steps": [e.steps for e in rep.epochs], "n": rep.step.n, "device": rep.device,
                  "batch": rep.batch_size, "loss": len(ip.user_ns["history"].history["loss"]),
                  "devices": rep.devices, "text": str(dataclasses.replace(ip.user_ns["R"], detailed=True))}))
'''


def test_mirrored_strategy_on_two_logical_cpus_is_timed():
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # the global batch of 64 is split over the 2 replicas; Keras counts global steps: 512 / 64 = 8
    assert r["replicas"] == 2
    assert r["total_steps"] == 16 and r["epoch_steps"] == [8, 8] and r["n"] == 15
    assert r["batch"] == 64 and r["loss"] == 2
    assert r["device"] == "CPU:0"
    assert r["devices"] == ["CPU:0", "CPU:1"] and re.search(r"replicas +2: CPU:0, CPU:1", r["text"]), r["text"]


DATA_PARALLEL = r'''
import json, keras
from IPython.core.interactiveshell import InteractiveShell
keras.distribution.set_distribution(keras.distribution.DataParallel())  # both of the host's devices
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "colab_magic")
ip.run_cell("""
import numpy as np, keras
x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
""").raise_error()
ip.run_cell("%%timed_fit -q --no-history -v R\nhistory = model.fit(x, y, batch_size=32, epochs=2, verbose=0)").raise_error()
rep = ip.user_ns["R"][0]
print(json.dumps({"devices": rep.devices, "total_steps": rep.total_steps, "batch": rep.batch_size}))
'''


@pytest.mark.skipif(not _has("jax"), reason="jax not installed")
def test_data_parallel_on_jax_lists_every_device():
    """keras.distribution.DataParallel over two host devices (XLA's flag makes the CPU two devices)."""
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", DATA_PARALLEL], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == ["CPU:0", "CPU:1"]
    assert r["total_steps"] == 2 * 8 and r["batch"] == 32  # global steps of the global batch
