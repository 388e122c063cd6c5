"""--live's content and its two displays: the status line made from a scripted fit (exact), the
terminal line (only with Keras' bar off), and the notebook display replaced by the summary."""

import io
import shutil

import pytest

from colab_magic import live
from colab_magic.live_view import LiveView
from colab_magic.sampler import Sampler
from tests.fake_pynvml import ManualClock, h100

GiB = 2**30

pytest.importorskip("keras")
from colab_magic.observer import LoopPlan
from colab_magic.timing import StepTimer  # noqa: E402


def scripted(fake_nvml, **gpu):
    """Epoch 2 of 3, 3 of its 4 steps done, every step 0.5 s after the compiling one."""
    clock = ManualClock()
    fake = fake_nvml([h100(memory_used=20 * GiB, power_mw=300_000, **gpu)], clock=clock)
    sampler = Sampler(interval=3600)
    sampler.start()
    assert sampler.ready.wait(10)
    timer = StepTimer(clock=clock)
    timer.plan = LoopPlan(3, 4)
    timer.fit_started(timer.plan)
    for epoch, steps in ((0, 4), (1, 3)):
        timer.epoch_started(epoch)
        for batch in range(steps):
            timer.step_started(batch)
            clock.advance(0.5)
            timer.step_ended(batch)
        if epoch == 0:
            timer.epoch_ended(0)
    sampler._tick()
    return timer, sampler, fake


def test_the_status_of_a_fit_under_way(fake_nvml):
    timer, sampler, _ = scripted(fake_nvml)
    try:
        status = live.status(timer, sampler, "cnn")
    finally:
        sampler.stop()
    assert (status.epoch, status.epochs, status.step, status.steps) == (2, 3, 3, 4)
    assert status.steps_per_s == 2.0  # 0.5 s a step
    assert status.left_s == 2.5  # one step of this epoch and the 4 of the last, at 0.5 s
    gpu = status.gpus[0]
    assert (gpu.memory_used, gpu.memory_total, gpu.power_w) == (20 * GiB, 80 * GiB, 300.0)
    assert gpu.sm_activity_pct == pytest.approx(40.0) and status.warnings == []
    text = status.to_text()
    assert text.startswith("epoch 2/3 · step 3/4 · 2.00 steps/s · 2 s left · GPU 0 ")
    assert "(SM 40%), 20.0 GiB/80.0 GiB, 300 W, " in text
    assert len(status.to_text(width=30)) == 30 and status.to_text(width=30).endswith("…")
    assert status.to_html().startswith('<div class="colab-magic-live"') and "cnn: epoch 2/3" in status.to_html()


def test_memory_near_full_and_throttled_clocks_are_marked(fake_nvml):
    timer, sampler, _ = scripted(fake_nvml, clock_events=0x020)  # sw_thermal
    try:
        sampler.gpus[0].series["memory_used"].add(0.0, 0.95 * 80 * GiB)  # the boundary: 95% is full
        status = live.status(timer, sampler, "cnn")
    finally:
        sampler.stop()
    assert status.warnings == ["GPU 0 memory 95% full", "GPU 0 throttled (sw_thermal)"]
    assert "⚠ GPU 0 memory 95% full · ⚠ GPU 0 throttled (sw_thermal)" in status.to_text()


def test_durations_read_as_a_person_would_say_them():
    assert [live.duration(s) for s in (0, 59.4, 60, 185, 3599, 3600, 7620, -3)] == [
        "0 s", "59 s", "1 min 00 s", "3 min 05 s", "59 min 59 s", "1 h 00 min", "2 h 07 min", "0 s"]


class Tty(io.StringIO):
    def isatty(self):
        return True


class Fit:
    def __init__(self, timer, sampler):
        self.timer, self.sampler, self.model = timer, sampler, type("M", (), {"name": "cnn"})()


def test_the_terminal_line_is_redrawn_in_place_and_cleared(fake_nvml):
    timer, sampler, _ = scripted(fake_nvml)
    stream = Tty()
    view = LiveView("terminal", stream=stream, every=0.0)
    try:
        view.watch(Fit(timer, sampler))
        sampler._tell()
        sampler._tell()
        view.say("a warning")
        view.stop()
        sampler._tell()  # after stop: nothing more
    finally:
        sampler.stop()
    out = stream.getvalue()
    line = live.status(timer, sampler, "cnn").to_text(shutil.get_terminal_size().columns - 1)  # 99: COLUMNS=100
    assert out.count("\r" + line.split(" · ")[0]) == 2
    assert out.endswith("a warning\n")  # the line was cleared for it, and not drawn again after stop
    assert "\r" + " " * len(line) + "\r" in out


@pytest.mark.parametrize("verbose, tty", [(1, True), (0, False)])
def test_no_terminal_line_beside_keras_bar_or_into_a_file(fake_nvml, verbose, tty):
    timer, sampler, _ = scripted(fake_nvml)
    timer.plan = LoopPlan(timer.plan.epochs, timer.plan.steps_per_epoch, verbose not in (0, 2))
    stream = Tty() if tty else io.StringIO()
    view = LiveView("terminal", stream=stream, every=0.0)
    try:
        view.watch(Fit(timer, sampler))
        sampler._tell()
    finally:
        sampler.stop()
    assert stream.getvalue() == ""


def test_a_failing_display_is_recorded_and_sampling_goes_on(fake_nvml):
    timer, sampler, _ = scripted(fake_nvml)
    try:
        sampler.listeners.append(lambda s: 1 / 0)
        sampler._tell()
        ticks = sampler.ticks
        sampler._tick()
    finally:
        sampler.stop()
    assert sampler.errors == ["ZeroDivisionError: division by zero"]
    assert sampler.ticks == ticks + 2  # the next reading and the last one


@pytest.mark.keras
@pytest.mark.parametrize("verbose", [0, 1])
def test_live_in_terminal_ipython(ip, monkeypatch, verbose):
    """Through the magic: a line redrawn on a terminal's stderr while the fit runs with Keras' bar off,
    erased before the summary; nothing beside Keras' own bar."""
    stream = Tty()
    monkeypatch.setattr("sys.stderr", stream)
    cell = ("import time, numpy as np, keras\n"
            "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nmodel.compile(loss='mse')\n"
            "slow = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.1))\n"
            f"h = model.fit(np.zeros((64, 4)), np.zeros((64, 1)), batch_size=8, epochs=3, verbose={verbose}, "
            "callbacks=[slow])")
    ip.run_cell(f"%%timed_fit -v R --no-history --live\n{cell}").raise_error()  # -q would show nothing, live or not
    out = stream.getvalue()
    if verbose:
        assert "\repoch " not in out
        return
    assert out.count("\repoch ") >= 1 and "steps/s" in out  # 24 steps of 0.1 s: a redraw a second
    assert out.endswith("\r")  # erased before anything else is printed
