"""The time outside the steps: where each epoch's time goes (before its first step, in steps, validation,
after its last step), each of the user's callbacks timed by name, and the verdicts on them, on real
Keras fits and at the thresholds' edges."""

import dataclasses

import pytest

from colab_magic import epoch_verdicts, trials
from colab_magic.parts import CallbackTime, Epoch
from colab_magic.verdicts import findings
from tests import builders

pytestmark = pytest.mark.solo  # judges measured shares of time (pyproject)

SETUP = '''
import numpy as np, keras, time
x = np.random.default_rng(0).random((1024, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
def make_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)], name="net")
    model.compile(optimizer="sgd", loss="mse")
    return model
class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.004)
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.1)
'''


@pytest.mark.keras
def test_a_slow_callback_is_named_with_its_time_and_the_epoch_parts_add_up(kip):
    kip.run_cell("slow = Slow()\nlam = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, l: time.sleep(0.05))"
                 ).raise_error()
    kip.run_cell("%%timed_fit -q -v R --no-history\n"
                 "h = make_model().fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[slow, lam])").raise_error()
    r = kip.user_ns["R"][0]
    # 32 steps of 4 ms and one 0.1 s epoch end, per epoch: what Slow's hooks slept, within 10%
    expected = 2 * (32 * 0.004 + 0.1)
    slow, lam = r.callbacks
    assert slow.name == "Slow" and slow.total_s == pytest.approx(expected, rel=0.10)
    assert slow.epochs_s == pytest.approx([expected / 2] * 2, rel=0.10) and slow.outside_s == pytest.approx(0, abs=1e-3)
    # on_epoch_begin runs before the epoch's clock starts (ours comes last): outside epochs
    assert lam.name == "LambdaCallback" and lam.outside_s == pytest.approx(0.1, rel=0.10)
    assert r.own_hooks_s is not None and 0 < r.own_hooks_s < 0.05 and r.input_kind == "numpy"
    for e in r.epochs:
        parts = e.before_steps_s + e.steps_s + e.val_s + e.after_steps_s
        assert parts == pytest.approx(e.time_s, rel=0.02)
        assert e.after_steps_s >= 0.1  # Slow's epoch end, after the last step
        assert e.callbacks_s == pytest.approx(expected / 2, rel=0.10)
    finding = next(f for f in r.findings if f.rule == "slow_callback")
    total = sum(e.time_s for e in r.epochs)
    assert finding.title == f"Slow callback: Slow takes {100 * slow.total_s / total:.0f}% of the fit"
    assert finding.evidence.startswith("Slow: ") and "per epoch" in finding.evidence
    # the user's objects as they were: no timing attribute left, LambdaCallback's own attribute back
    assert "on_train_batch_end" not in vars(kip.user_ns["slow"]) and "on_epoch_end" not in vars(kip.user_ns["slow"])
    assert vars(kip.user_ns["lam"])["on_epoch_begin"].__name__ == "<lambda>"


@pytest.mark.keras
def test_callbacks_are_put_back_after_a_fit_that_fails(kip):
    kip.run_cell("slow = Slow()").raise_error()
    res = kip.run_cell("%%timed_fit -q --no-history\nmake_model().fit(x[:, :3], y, epochs=1, verbose=0, callbacks=[slow])")
    assert isinstance(res.error_in_exec, ValueError)
    assert not {"on_train_batch_end", "on_epoch_end"} & set(vars(kip.user_ns["slow"]))


@pytest.mark.keras
def test_heavy_validation_gets_its_verdict(kip):
    kip.run_cell("vx = np.concatenate([x] * 6); vy = np.concatenate([y] * 6)").raise_error()
    kip.run_cell("%%timed_fit -q -v R --no-history\n"
                 "h = make_model().fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(vx, vy), "
                 "validation_batch_size=8)").raise_error()
    r = kip.user_ns["R"][0]
    val = sum(e.val_s for e in r.epochs)
    total = sum(e.time_s for e in r.epochs)
    assert val >= 0.25 * total
    finding = next(f for f in r.findings if f.rule == "validation_heavy")
    assert finding.title == f"Validation takes {100 * val / total:.0f}% of the fit" and "validation_freq" in finding.fix


def epochs(*parts):
    """Epochs from (time, before first step) pairs, the rest in steps."""
    return [Epoch(epoch=n, time_s=t, train_s=t, val_s=0.0, steps=100, steps_s=t - b, step_median_s=(t - b) / 100,
                  complete=True, before_steps_s=b, after_steps_s=0.0) for n, (t, b) in enumerate(parts, 1)]


def test_epoch_start_threshold_edges_and_the_fix_for_numpy_on_tensorflow():
    share, least = epoch_verdicts.EPOCH_START_SHARE, epoch_verdicts.EPOCH_START_MIN_S
    on = builders.report(device="CPU:0", step=0.005, backend="tensorflow", input_kind="numpy",
                         epochs=epochs((10.0, 0.02), (20.0, 20.0 * share)))
    found = epoch_verdicts.epoch_start(on)
    assert found.title == f"Epoch starts stall: {100 * share:.0f}% of epoch 2 before its first step"
    assert found.evidence == (f"{20 * share:.2f} s of 20.00 s before the first step of epoch 2; 1 of 2 epochs stalled "
                              "at their start")
    assert found.fix == epoch_verdicts.NUMPY_FIX
    just_under = dataclasses.replace(on, epochs=epochs((10.0, 0.02), (20.0, 20.0 * share - 0.01)))
    assert epoch_verdicts.epoch_start(just_under) is None
    short = dataclasses.replace(on, epochs=epochs((1.0, 0.02), (2.0, least - 0.01)))  # 50%, but under a second
    assert epoch_verdicts.epoch_start(short) is None
    assert epoch_verdicts.epoch_start(dataclasses.replace(short, epochs=epochs((1.0, 0.02), (2.0, least)))) is not None
    generic = epoch_verdicts.epoch_start(dataclasses.replace(on, input_kind="PyDataset"))
    assert "on_epoch_end" in generic.fix and generic.fix != epoch_verdicts.NUMPY_FIX


def test_the_headline_names_the_loss_outside_the_steps():
    r = builders.report(device="CPU:0", step=0.005, backend="tensorflow", input_kind="numpy", model="net",
                        epochs=epochs((13.0, 0.02), (20.1, 8.4)))
    r = dataclasses.replace(r, findings=findings(r))
    assert r.findings[0].rule == "epoch_start"
    assert r.headline == ("net on the CPU: 5.00 ms/step, 16.6 s/epoch. Epoch starts stall: 42% of epoch 2 before its "
                          "first step (fix: a repeating pipeline and steps_per_epoch).")


def test_slow_callback_and_validation_edges():
    base = builders.report(device="CPU:0", step=0.005, epochs=epochs((10.0, 0.0), (10.0, 0.0)))
    share = epoch_verdicts.SLOW_CALLBACK_SHARE
    at = dataclasses.replace(base, callbacks=[CallbackTime("Logger", 20.0 * share, [10.0 * share] * 2)])
    assert epoch_verdicts.slow_callback(at).evidence == "Logger: 1.00 s per epoch, 2.00 s of the epochs' 20.00 s"
    under = dataclasses.replace(base, callbacks=[CallbackTime("Logger", 20.0 * share - 0.01, [1.0, 0.99])])
    assert epoch_verdicts.slow_callback(under) is None and epoch_verdicts.slow_callback(base) is None
    quarter = epoch_verdicts.VALIDATION_SHARE
    heavy = [dataclasses.replace(e, val_s=10.0 * quarter) for e in base.epochs]
    assert epoch_verdicts.validation_heavy(dataclasses.replace(base, epochs=heavy)).title == "Validation takes 25% of the fit"
    light = [dataclasses.replace(e, val_s=10.0 * quarter - 0.01) for e in base.epochs]
    assert epoch_verdicts.validation_heavy(dataclasses.replace(base, epochs=light)) is None


def test_the_projection_spans_every_epochs_time_outside_the_steps():
    # epoch 1 without a stall, epoch 2 with: the range covers both kinds (the first epoch included)
    two = builders.report(epochs=[Epoch(1, 8.0, 8.0, 0.0, 100, 7.9, 0.079, True), Epoch(2, 11.0, 11.0, 0.0, 100, 8.0, 0.08, True)])
    assert trials.outside_range(two) == pytest.approx((0.1, 3.0))
    assert trials.fixed_costs(two) == pytest.approx([3.0])  # the point estimate: the epochs after the first
    assert trials.outside_range(None) is None
