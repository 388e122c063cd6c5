"""Intervals for short timings: how far a mean step measured in a fraction of a second may be from the
mean of a whole epoch.

Two sources of error, combined on a log scale (a step time is a positive quantity, and a machine's
slow stretch makes steps slower by a factor, not by an amount):

- the timing's own scatter: its steps split into a few consecutive blocks, and Student's t on the
  block means (blocks, not single steps: neighbouring steps are correlated, and block means are
  near normal where single step times are skewed);
- drift: a machine whose speed wanders (other tenants, clocks, a busy host) makes a window of a
  fraction of a second unlike the epoch around it. Where the user's own fit is at hand, its steps
  give the spread of windows of the same length around the fit's mean on this machine, today
  (the 2.5% and 97.5% quantiles: an empirical 95% range). Without it, the block scatter stands in,
  as the prediction interval for one more window.

Pure functions on sequences of seconds; nothing here knows Keras.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .stats import quantile_of

BLOCKS = 5  # blocks a timing is split into
MIN_DRIFT_WINDOWS = 8  # fewer windows of the fit than this say too little about its tails
DRIFT_Q = 0.025  # each tail: a 95% range
MAX_LOG_WIDTH = math.log(10)  # an interval never claims more than a factor of 10 either way

# Student's t, two-sided 95% (0.975 quantile), by degrees of freedom; 1.96 beyond the table.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (the nearest smaller tabled df)."""
    if df < 1:
        raise ValueError("at least one degree of freedom")
    if df > 30:
        return 1.96
    return T975[max(k for k in T975 if k <= df)]


def block_means(values: Sequence[float], blocks: int = BLOCKS) -> list[float]:
    """Means of ``blocks`` consecutive, near-equal runs of ``values`` (fewer when there are fewer values)."""
    n = len(values)
    blocks = min(blocks, n)
    if blocks < 1:
        return []
    edges = [round(i * n / blocks) for i in range(blocks + 1)]
    return [math.fsum(values[a:b]) / (b - a) for a, b in zip(edges, edges[1:], strict=False)]


def drift(fit_steps: Sequence[float], window_s: float) -> tuple[float, float] | None:
    """The 2.5% and 97.5% quantiles of (mean of a window of ``window_s`` seconds of ``fit_steps``) /
    (mean of all of them): how much slower or faster than the fit a window that long ran. None when
    the fit holds fewer than :data:`MIN_DRIFT_WINDOWS` such windows."""
    n = len(fit_steps)
    if not n or window_s <= 0:
        return None
    mean = math.fsum(fit_steps) / n
    if mean <= 0:
        return None
    per_window = max(1, round(window_s / mean))
    count = n // per_window
    if count < MIN_DRIFT_WINDOWS:
        return None
    ratios = sorted(math.fsum(fit_steps[i * per_window:(i + 1) * per_window]) / per_window / mean
                    for i in range(count))
    return quantile_of(ratios, DRIFT_Q), quantile_of(ratios, 1 - DRIFT_Q)


def mean_interval(values: Sequence[float], fit_drift: tuple[float, float] | None = None, blocks: int = BLOCKS,
                  predict: bool = True) -> tuple[float, float] | None:
    """A 95% interval for the long-run mean step, from ``values`` (one short timing's step seconds,
    in order) and the ``fit_drift`` of :func:`drift` (None: none known). ``predict=False``: only the
    timing's own uncertainty (a whole fit's mean, where nothing is projected). None with fewer than
    two values."""
    means = block_means(values, blocks)
    if len(means) < 2:
        return None
    m = math.fsum(values) / len(values)
    if m <= 0:
        return None
    # the blocks' relative standard deviation, as a log half-width of the timing's own mean
    spread = statistics.stdev(means) / m
    own = math.log1p(t975(len(means) - 1) * spread / math.sqrt(len(means)))
    if not predict:
        low = high = own
    elif fit_drift is None:
        # no fit to learn the machine's drift from: the block scatter predicts one more window
        width = math.log1p(t975(len(means) - 1) * spread * math.sqrt(1 + 1 / len(means)))
        low = high = width
    else:
        slow, fast = fit_drift
        # a window that ran slow (ratio > 1) means the long-run mean is lower than measured
        low = math.hypot(math.log(max(fast, 1.0)), own)
        high = math.hypot(-math.log(min(slow, 1.0)) if slow > 0 else MAX_LOG_WIDTH, own)
    low, high = min(low, MAX_LOG_WIDTH), min(high, MAX_LOG_WIDTH)
    return m * math.exp(-low), m * math.exp(high)


def ratio_interval(top: float, top_interval: tuple[float, float] | None, bottom: float,
                   bottom_interval: tuple[float, float] | None) -> tuple[float, float] | None:
    """The interval of ``top / bottom`` (a speed-up: the baseline's mean step over a run's) from the
    two means' intervals, the errors independent (added on a log scale)."""
    if not (top and bottom and top_interval and bottom_interval):
        return None
    t_lo, t_hi = (math.log(top / top_interval[0]), math.log(top_interval[1] / top))
    b_lo, b_hi = (math.log(bottom / bottom_interval[0]), math.log(bottom_interval[1] / bottom))
    ratio = top / bottom
    return ratio * math.exp(-math.hypot(t_lo, b_hi)), ratio * math.exp(math.hypot(t_hi, b_lo))


def overlaps(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    """Two intervals share a point: a difference between them is within the noise."""
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]
