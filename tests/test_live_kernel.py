"""--live in a real Jupyter kernel (ipykernel, driven through jupyter_client as a front end would):
the status display arrives, is updated in place while the fit trains, and the summary takes its place."""

import os
import re
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")
pytestmark = pytest.mark.keras

CELL = '''%%timed_fit {flags} --no-history
import time, numpy as np, keras
x = np.zeros((64, 4), dtype="float32"); y = np.zeros((64, 1), dtype="float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(loss="mse")
slow = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.1))
history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[slow])  # 40 steps of 0.1 s
'''


def test_live_display_is_updated_in_place_then_replaced_by_the_summary(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", COLAB_MAGIC_DRIVE=str(tmp_path / "drive"))
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive("%load_ext colab_magic", timeout=120)
        assert reply["content"]["status"] == "ok"
        messages = run(kc, CELL.format(flags="--live"))
        # the setting that makes --live the default in notebooks
        kc.execute_interactive("import os; os.environ['COLAB_MAGIC_LIVE'] = '1'", timeout=60)
        by_default = run(kc, CELL.format(flags=""))
        quiet = run(kc, CELL.format(flags="-q"))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    check(messages)
    check(by_default)
    shown = {"display_data", "update_display_data", "execute_result"}
    assert [m["msg_type"] for _, m in quiet if m["msg_type"] in shown] == []  # -q: nothing, live or not


def run(kc, cell):
    messages = []
    reply = kc.execute_interactive(cell, timeout=300, output_hook=lambda m: messages.append((time.monotonic(), m)))
    assert reply["content"]["status"] == "ok", reply["content"]
    return messages


def check(messages):
    shown = [(t, m) for t, m in messages if m["msg_type"] == "display_data"]
    updates = [(t, m) for t, m in messages if m["msg_type"] == "update_display_data"]
    assert len(shown) == 1, [m["msg_type"] for _, m in messages]  # the live display; the summary is no second one
    display_id = shown[0][1]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for _, m in updates)
    live = [m for _, m in updates if 'class="colab-magic-live"' in m["content"]["data"].get("text/html", "")]
    assert len(live) >= 2  # about once a second over a fit of 4 s or more
    texts = [m["content"]["data"]["text/plain"] for m in live]
    assert all(text.startswith("epoch ") for text in texts)
    assert "epoch 5/5" in texts[-1] or "epoch 4/5" in texts[-1]
    # the last update is the summary, in the live display's place
    last = updates[-1][1]["content"]["data"]
    # a later cell of the session: "CPU only" in the headline, the no-GPU explanation said once already
    assert re.match(r"sequential(_\d+)? on the CPU( \(CPU only: no GPU here\))?: ", last["text/plain"])
    assert re.search(r'<p class="cm-answer">sequential(_\d+)? on the CPU: ', last["text/html"])
    # the updates came while the fit trained, spread over it, not all at the end
    times = [t for t, m in updates if 'class="colab-magic-live"' in m["content"]["data"].get("text/html", "")]
    assert times[-1] - times[0] >= 1.0
