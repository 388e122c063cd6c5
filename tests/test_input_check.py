"""The input check's interval: how sure the measured wait is (pure arithmetic, no Keras)."""

import pytest

from colab_magic.input_check import share_interval


def test_a_steady_fit_and_a_steady_check_give_the_point_itself():
    low, high = share_interval([0.03] * 100, 0.03, [0.02] * 30, 0.02)
    assert low == pytest.approx(1 / 3) and high == pytest.approx(1 / 3)


def test_the_checks_scatter_widens_it_by_students_t():
    # blocks of two: means 18, 22, 18, 22, 20 ms: sd 2 ms, 10% of the 20 ms mean; the steady fit's
    # windows never drift, so the half-width is log(1 + 2.776 * 0.1 / sqrt(5)) = 0.117024 either way
    check = [0.018, 0.018, 0.022, 0.022, 0.018, 0.018, 0.022, 0.022, 0.020, 0.020]
    low, high = share_interval([0.04] * 100, 0.04, check, 0.02)
    assert low == pytest.approx(0.437927, abs=1e-6) and high == pytest.approx(0.555218, abs=1e-6)


def test_an_unsteady_fit_widens_it_too():
    check = [0.02] * 30
    steady = share_interval([0.03] * 100, 0.03, check, 0.02)
    # half the fit at 25 ms, half at 35: its own mean is less sure, and its windows drift
    uneven = [0.025] * 50 + [0.035] * 50
    low, high = share_interval(uneven, 0.03, check, 0.02)
    assert low < steady[0] and high > steady[1]
    # the fit's mean over 10 blocks of 10 (five at 25 ms, five at 35): sd 5.27 ms, 17.6% of 30 ms;
    # log(1 + 2.262 * 0.17568 / sqrt(10)) = 0.118375 either way on 20/30. The steady copy adds nothing,
    # and a 1.8 s fit holds too few 0.6 s windows for a drift.
    assert low == pytest.approx(0.249556, abs=1e-6) and high == pytest.approx(0.407758, abs=1e-6)


def test_a_share_below_nothing_is_clamped_at_zero():
    low, high = share_interval([0.02] * 100, 0.02, [0.018, 0.022] * 10, 0.02)
    assert low == 0.0 and 0.0 < high < 0.2


@pytest.mark.parametrize("fit, check", [(None, [0.02] * 30), ([], [0.02] * 30), ([0.03] * 100, [0.02]),
                                        ([0.03] * 100, None)])
def test_too_few_steps_to_say(fit, check):
    assert share_interval(fit, 0.03, check, 0.02) is None
