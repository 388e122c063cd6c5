"""--compare's rules, without training: which devices, how many steps and warm-up steps, the epoch's
fixed cost, the projection, the slice of the data a clone trains on. (tests/test_compare.py trains.)"""

import numpy as np
import pytest

from colab_magic import comparison
from colab_magic.comparison import _head, _is_clone_problem, _summarise, fixed_cost_s, steps_for, warmup_for
from colab_magic.parts import Epoch
from tests import builders


def epoch(n, time_s, steps_s, val_s=0.0, steps=10):
    return Epoch(epoch=n, time_s=time_s, train_s=time_s - val_s, val_s=val_s, steps=steps, steps_s=steps_s,
                 step_median_s=steps_s / steps if steps else None, complete=True, energy_j=[])


def test_devices_default_all_and_requested(monkeypatch):
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cpu:0", "gpu:0", "gpu:1"])
    assert comparison.devices_to_compare() == ["cpu:0", "gpu:0"]
    assert comparison.devices_to_compare(["all"]) == ["cpu:0", "gpu:0", "gpu:1"]
    assert comparison.devices_to_compare(["GPU:1", "cpu:0"]) == ["gpu:1", "cpu:0"]
    with pytest.raises(ValueError) as err:
        comparison.devices_to_compare(["gpu:0", "tpu:0", "gpu:7"])
    assert str(err.value) == "tpu:0, gpu:7 not among the devices Keras sees: cpu:0, gpu:0, gpu:1"
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cuda:0"])  # no CPU listed: cpu:0 all the same
    assert comparison.devices_to_compare() == ["cpu:0", "cuda:0"]


def test_the_devices_keras_sees_here():
    assert comparison._keras_devices()[0] == "cpu:0"


@pytest.mark.parametrize("asked, per_epoch, expected", [(35, 100, 35), (35, 20, 20), (35, 1, 2), (35, None, 35)])
def test_steps_never_exceed_the_users_epoch(asked, per_epoch, expected):
    report = builders.report(steps_per_epoch=per_epoch)
    assert steps_for(asked, report) == expected
    assert steps_for(asked, None) == asked


@pytest.mark.parametrize("steps, warmup", [(2, 0), (4, 1), (7, 2), (16, 5), (35, 5), (100, 5)])
def test_warm_up_is_at_most_a_third_and_at_most_five(steps, warmup):
    assert warmup_for(steps) == warmup


def test_fixed_cost_from_the_epochs_after_the_first():
    first, second, third = epoch(1, 3.0, 1.0), epoch(2, 1.5, 1.0), epoch(3, 1.7, 1.0, val_s=0.5)
    assert fixed_cost_s(builders.report(epochs=[first, second, third])) == pytest.approx((0.5 + 0.2) / 2)
    assert fixed_cost_s(builders.report(epochs=[first])) == pytest.approx(2.0)  # only the first: it is all there is
    empty = epoch(2, 9.0, 0.0, steps=0)  # an epoch with no steps (a fit cut at its start) does not count
    assert fixed_cost_s(builders.report(epochs=[first, empty])) == pytest.approx(2.0)
    assert fixed_cost_s(builders.report(epochs=[])) is None and fixed_cost_s(None) is None


def test_a_clone_projected_to_the_users_epoch():
    clone = builders.report(device="GPU:0", gpus=[builders.gpu()], batch_size=64, step=None,
                            epochs=[epoch(1, 0.5, 0.3), epoch(2, 0.5, 0.4)])
    clone.step = builders.steps(0.01)
    run = _summarise("GPU:0", clone, 1000, 0.25)
    assert (run.kind, run.device, run.steps_per_epoch) == ("compare", "GPU:0", 1000)
    assert run.projected_epoch_s == pytest.approx(1000 * 0.01 + 0.25) and run.samples_per_s == pytest.approx(6400)
    own = _summarise("GPU:0", clone, 1000, None)  # no fixed cost from the user's fit: the clone's own
    assert own.projected_epoch_s == pytest.approx(1000 * 0.01 + 0.1)
    unknown = _summarise("GPU:0", clone, None, 0.25)
    assert unknown.projected_epoch_s is None and unknown.steps_per_epoch is None
    clone.batch_size = None
    assert _summarise("GPU:0", clone, 10, 0.0).samples_per_s is None
    clone.step = None
    assert _summarise("GPU:0", clone, 10, 0.0).projected_epoch_s is None
    nothing = _summarise("CPU:0", None, 10, 0.0)
    assert (nothing.device, nothing.kind, nothing.step_mean_s) == ("CPU:0", "compare", None)


def test_a_clone_trains_on_the_head_of_the_data():
    x = np.arange(100).reshape(50, 2)
    assert _head(x, 10).shape == (10, 2) and _head(x, 50) is x and _head(x, 80) is x
    pair = _head((x, np.arange(50)), 5)
    assert isinstance(pair, tuple) and [len(p) for p in pair] == [5, 5]
    listed = _head([x, x], 5)
    assert isinstance(listed, list) and [len(p) for p in listed] == [5, 5]
    named = _head({"a": x, "b": np.arange(50)}, 3)
    assert {k: len(v) for k, v in named.items()} == {"a": 3, "b": 3}
    scalar = np.float32(1.0)
    assert _head(scalar, 3) is scalar
    mixed = [x, "label"]
    assert _head(mixed, 3) is mixed and _head({"a": x, "b": 1}, 3)["a"] is x
    gen = iter([1])
    assert _head(gen, 3) is gen


@pytest.mark.parametrize("exc, clone_problem", [
    (TypeError("Layer Mine does not implement get_config"), True),  # the one word that says so
    (TypeError("Could not deserialize: from_config failed"), True),
    (ValueError("cannot clone a subclassed model"), True),
    (TypeError("object is not serializable"), True),
    (NotImplementedError(), True),
    (ValueError("shapes do not match"), False),
])
def test_what_counts_as_a_model_that_cannot_be_cloned(exc, clone_problem):
    assert _is_clone_problem(exc) is clone_problem


def test_one_cpu_and_whatever_it_is_called(monkeypatch):
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cpu:0", "cpu:1", "gpu:0", "gpu:1"])
    assert comparison.devices_to_compare() == ["cpu:0", "gpu:0"]
    assert comparison.devices_to_compare(["all"]) == ["cpu:0", "gpu:0", "gpu:1"]
    monkeypatch.setattr(comparison, "_keras_devices", lambda: ["cpu:1", "gpu:0"])
    assert comparison.devices_to_compare() == ["cpu:1", "gpu:0"]


def test_a_clone_is_summarised_as_the_device_it_ran_on():
    clone = builders.report(device="CPU:0", gpus=[], batch_size=32, step=0.01, epochs=[])
    run = _summarise("GPU:1", clone, 100, None)  # no epoch anywhere to measure the fixed cost on: none
    assert run.device == "GPU:1" and run.projected_epoch_s == pytest.approx(1.0)
