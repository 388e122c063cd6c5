"""The interval arithmetic of short timings (colab_magic.intervals): exact values at the edges."""

import math

import pytest

from colab_magic import intervals
from colab_magic.intervals import block_means, drift, mean_interval, overlaps, ratio_interval, t975


@pytest.mark.parametrize("df, t", [(1, 12.706), (4, 2.776), (10, 2.228), (11, 2.228), (12, 2.179), (29, 2.086),
                                   (30, 2.042), (31, 1.96), (1000, 1.96)])
def test_student_t_from_the_table_rounding_down(df, t):
    assert t975(df) == t


def test_no_degrees_of_freedom_is_an_error():
    with pytest.raises(ValueError):
        t975(0)


def test_block_means_split_in_order():
    assert block_means(list(range(1, 11))) == [1.5, 3.5, 5.5, 7.5, 9.5]
    assert block_means([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]  # fewer values than blocks: one each
    assert block_means([0, 0, 3, 3, 3, 6, 6], 3) == [0.0, 3.0, 6.0]  # edges at round(7/3)=2 and round(14/3)=5
    assert block_means([]) == []


def test_drift_is_the_spread_of_windows_of_the_fit_around_its_mean():
    fit = [1.0] * 80 + [2.0] * 20  # mean 1.2: a slow stretch at the end
    # 12 s windows: 10 steps each, 8 at 1.0 and 2 at 2.0
    assert drift(fit, 12.0) == pytest.approx((1.0 / 1.2, 2.0 / 1.2))
    assert drift(fit, 15.0) is not None  # 12 steps a window: 8 windows, just enough
    assert drift(fit, 20.0) is None  # 17 steps a window: 5 windows say too little
    assert drift([], 1.0) is None and drift(fit, 0.0) is None and drift([0.0] * 50, 1.0) is None


def test_drift_quantiles_interpolate_between_windows():
    fit = [1.0] * 40 + [3.0] * 10  # 50 one-step windows at window_s 1: the 2.5% and 97.5% quantiles
    slow, fast = drift(fit, 1.0)
    mean = 1.4
    assert slow == pytest.approx(1.0 / mean)
    # position 0.975 x 49 = 47.775, between two 3.0 windows
    assert fast == pytest.approx(3.0 / mean)


FIVE = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # block means 1..5: mean 3, sd sqrt(2.5)


def test_a_prediction_interval_without_a_fit():
    spread = math.sqrt(2.5) / 3
    width = math.log1p(2.776 * spread * math.sqrt(1 + 1 / 5))
    assert mean_interval(FIVE) == pytest.approx((3 * math.exp(-width), 3 * math.exp(width)))


def test_a_fits_own_interval_is_its_means():
    own = math.log1p(2.776 * (math.sqrt(2.5) / 3) / math.sqrt(5))
    assert mean_interval(FIVE, predict=False) == pytest.approx((3 * math.exp(-own), 3 * math.exp(own)))


def test_the_fits_drift_widens_each_side_by_its_own_tail():
    own = math.log1p(2.776 * (math.sqrt(2.5) / 3) / math.sqrt(5))
    lo, hi = mean_interval(FIVE, (0.9, 1.5))
    # a window that could have run 1.5x slow: the long-run mean may be that much lower
    assert lo == pytest.approx(3 * math.exp(-math.hypot(math.log(1.5), own)))
    assert hi == pytest.approx(3 * math.exp(math.hypot(math.log(1 / 0.9), own)))
    # a drift that never went below (or above) 1 leaves that side to the timing's own scatter
    lo, hi = mean_interval(FIVE, (1.1, 0.95))
    assert lo == pytest.approx(3 * math.exp(-own)) and hi == pytest.approx(3 * math.exp(own))


def test_steady_steps_give_a_point_and_wild_ones_at_most_a_factor_of_ten():
    assert mean_interval([0.01] * 10) == pytest.approx((0.01, 0.01))
    # two blocks 1000x apart: t(1) = 12.7 would claim a factor of 23; the cap says 10
    assert mean_interval([0.001, 1.0]) == pytest.approx((0.5005 / 10, 0.5005 * 10))
    assert mean_interval([0.01]) is None and mean_interval([]) is None and mean_interval([0.0, 0.0]) is None
    assert mean_interval([0.01, 0.02], (0.0, 1.0))[1] == pytest.approx(0.015 * 10)  # a zero tail: the cap


def test_a_ratios_interval_adds_both_errors_on_a_log_scale():
    both = math.hypot(math.log(1.25), math.log(1.25))
    assert ratio_interval(10, (8, 12.5), 2, (1.6, 2.5)) == pytest.approx((5 * math.exp(-both), 5 * math.exp(both)))
    # asymmetric: the top's low side goes with the bottom's high side
    lo, hi = ratio_interval(10, (9, 12), 2, (1.5, 2.2))
    assert lo == pytest.approx(5 * math.exp(-math.hypot(math.log(10 / 9), math.log(2.2 / 2))))
    assert hi == pytest.approx(5 * math.exp(math.hypot(math.log(12 / 10), math.log(2 / 1.5))))
    assert ratio_interval(10, None, 2, (1, 3)) is None and ratio_interval(0, (1, 2), 2, (1, 3)) is None


def test_overlaps_at_the_edges():
    assert overlaps((1, 2), (2, 3)) and overlaps((2, 3), (1, 2)) and overlaps((1, 4), (2, 3))
    assert not overlaps((1, 2), (2.01, 3)) and not overlaps(None, (1, 2))


def test_the_constants_the_interval_rests_on():
    assert (intervals.BLOCKS, intervals.MIN_DRIFT_WINDOWS, intervals.DRIFT_Q) == (5, 8, 0.025)


def test_one_block_is_the_mean_and_a_realistic_fit_drifts_the_same():
    assert block_means([1.0, 2.0, 3.0], 1) == [2.0]
    # steps of 10 and 20 ms: the same shape as the 1 s and 2 s fit above
    assert drift([0.01] * 80 + [0.02] * 20, 0.12) == pytest.approx((1.0 / 1.2, 2.0 / 1.2))
    # windows of one step each when a step is longer than the window
    assert drift([1.0, 3.0] * 25, 1.0) == pytest.approx((0.5, 1.5))


def test_blocks_as_asked():
    values = [1.0, 1.0, 3.0, 3.0]  # two blocks: means 1 and 3
    spread = math.sqrt(2) / 2
    width = math.log1p(12.706 * spread * math.sqrt(1 + 1 / 2))
    assert mean_interval(values, blocks=2) == pytest.approx((2 * math.exp(-min(width, math.log(10))),
                                                              2 * math.exp(min(width, math.log(10)))))
    assert mean_interval(values, blocks=2) != mean_interval(values)  # four blocks of one


def test_the_error_says_why():
    with pytest.raises(ValueError, match="^at least one degree of freedom$"):
        t975(0)
