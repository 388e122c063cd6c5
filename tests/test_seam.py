"""The loop-source seam: a second source, a plain Python loop that drives the observer by hand,
gets a full report, a headline and a history record through the same path as Keras' fit."""

import threading
import time

import pytest

from colab_magic import history, recorder
from colab_magic.cell import TimedFitOptions, time_cell
from colab_magic.observer import CellObserver, FitFacts, LoopPlan
from colab_magic.parts import ModelSignature

from .fake_pynvml import t4

STEP_S = 0.004
EPOCHS, STEPS = 3, 25


def plain_loop(stop_at: int | None = None) -> None:
    """A training loop that knows nothing of Keras: it finds the cell's fits and tells them what it does."""
    fits = recorder.active()
    assert fits is not None, "a loop source finds the running cell's fits"
    signature = ModelSignature(["Linear", "ReLU", "Linear"], 1234, [None, 8])
    fit = fits.begin("mlp", lambda: FitFacts("plain", "mlp", "numpy", device="CPU:0", devices=["CPU:0"],
                                             batch_size=16, signature=signature))
    error = None
    try:
        fit.fit_started(LoopPlan(EPOCHS, STEPS))
        for epoch in range(EPOCHS):
            fit.epoch_started(epoch)
            for step in range(STEPS):
                fit.step_started(step)
                time.sleep(STEP_S)
                if stop_at is not None and epoch * STEPS + step == stop_at:
                    raise KeyboardInterrupt
                fit.step_ended(step)
                if fit.stop_requested():
                    return
            fit.validation_started()
            time.sleep(0.01)
            fit.validation_ended()
            fit.epoch_ended(epoch)
    except BaseException as exc:
        error = exc
        raise
    finally:
        fit.fit_ended(error)


def test_a_plain_loop_gets_a_report_a_headline_and_a_history_record(tmp_path, fake_nvml):
    fake_nvml([t4()])  # a GPU the loop leaves unused: the verdicts must say so
    path = tmp_path / "runs.jsonl"
    seen = []

    class Watch(CellObserver):
        def fit_began(self, fit):
            seen.append(("began", fit.index, threading.current_thread().name))

        def epoch_ended(self, fit):
            seen.append(("epoch", fit.timer.epochs[-1].epoch))

    result, value, error = time_cell(plain_loop, TimedFitOptions(interval=0.05, history_path=path), Watch())
    assert error is None and value is None and result.complete
    (report,) = result.reports
    assert report.loop == "plain" and report.model == "mlp" and report.device == "CPU:0"
    assert report.total_steps == EPOCHS * STEPS and report.epochs_planned == EPOCHS
    assert report.steps_per_epoch == STEPS and len(report.closed_epochs) == EPOCHS
    # the first step is kept apart, as for Keras; the rest are steady-state steps of about STEP_S
    assert report.step.n == EPOCHS * STEPS - 1 and STEP_S <= report.step.median < 5 * STEP_S
    assert all(e.val_s >= 0.01 for e in report.epochs)
    assert report.samples_per_s == pytest.approx(16 / report.step.median)
    assert report.sampler.ticks >= 1 and report.host.logical_cores >= 1
    assert report.gpus[0].name == "Tesla T4" and report.gpus[0].readings >= 1  # sampled through NVML
    assert report.findings[0].rule == "gpu_unused"
    assert result.headline.startswith("mlp on the CPU: ") and "ms/step" in result.headline
    assert "GPU present but unused" in result.headline
    assert "mlp" in str(result) and "Per epoch" in str(result)
    assert seen[0][:2] == ("began", 1) and [s[1] for s in seen[1:]] == [0, 1, 2]
    records, warnings = history.read(path)
    assert warnings == [] and len(records) == 1
    (record,) = records
    assert record["kind"] == "fit" and record["model"] == "mlp" and record["total_steps"] == EPOCHS * STEPS
    assert record["signature_id"] == ModelSignature(["Linear", "ReLU", "Linear"], 1234, [None, 8]).id
    assert record["step_median_s"] == pytest.approx(report.step.median)
    assert recorder.active() is None  # the cell's fits are found only while it runs


def test_a_plain_loop_interrupted_is_reported_incomplete_and_the_interrupt_kept():
    result, _, error = time_cell(lambda: plain_loop(stop_at=STEPS + 5), TimedFitOptions(interval=0.05))
    assert isinstance(error, KeyboardInterrupt) and not result.complete
    (report,) = result.reports
    assert not report.complete and report.error == "KeyboardInterrupt"
    assert report.total_steps == STEPS + 5 and len(report.closed_epochs) == 1


def test_the_cell_observer_can_stop_a_plain_loop():
    class StopAfter(CellObserver):
        def stop_requested(self, fit):
            return fit.timer.total_steps >= 10

    result, _, error = time_cell(plain_loop, TimedFitOptions(interval=0.05), StopAfter())
    assert error is None and result.reports[0].total_steps == 10


def test_a_fit_still_running_in_another_thread_is_reported_when_the_cell_ends():
    release = threading.Event()

    def cell():
        fits = recorder.active()

        def loop():
            fit = fits.begin("slow", lambda: FitFacts("plain", "slow", "numpy"))
            fit.fit_started(LoopPlan(1, 100))
            fit.epoch_started(0)
            release.wait(10)
            fit.fit_ended()  # after the cell: ignored, the report was delivered already

        thread = threading.Thread(target=loop)
        thread.start()
        time.sleep(0.2)
        return thread

    result, thread, _ = time_cell(cell, TimedFitOptions(interval=0.05))
    release.set()
    thread.join(10)
    (report,) = result.reports
    assert not report.complete and "still running in another thread" in report.error
