"""Small statistics with bounded memory: quantiles, a reservoir of values, a decimating time series.

A 24-hour fit makes millions of steps and hundreds of thousands of hardware samples; everything here
keeps exact counts, sums and extremes, and a bounded, unbiased subset for quantiles and plots.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence

from .parts import StepStats


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default) of already sorted values; None for none."""
    return quantile_of(sorted_values, q) if sorted_values else None


def quantile_of(sorted_values: Sequence[float], q: float) -> float:
    """:func:`quantile` of values known to be there."""
    n = len(sorted_values)
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def step_stats(values: Sequence[float], total: float | None = None, count: int | None = None,
            extremes: tuple[float, float] | None = None) -> StepStats | None:
    """median, p10, p90, p95, mean, min, max and n. ``total``/``count`` give an exact mean, and
    ``extremes`` the exact (min, max), when ``values`` is only a sample of the data."""
    ordered = sorted(values)
    if not ordered:
        return None
    n = count if count is not None else len(ordered)
    mean = (total if total is not None else math.fsum(ordered)) / n
    return StepStats(
        n=n,
        mean=mean,
        median=quantile_of(ordered, 0.5),
        p10=quantile_of(ordered, 0.1),
        p90=quantile_of(ordered, 0.9),
        p95=quantile_of(ordered, 0.95),
        min=extremes[0] if extremes else ordered[0],
        max=extremes[1] if extremes else ordered[-1],
    )


class Reservoir:
    """All values up to ``capacity``, then a uniform random sample of them (Li's algorithm L).

    Count, sum and extremes stay exact whatever the length of the run. Once full, the reservoir draws
    how many values to pass over before the next one it keeps, instead of a random number for every
    value (Vitter's algorithm R): a value passed over costs a comparison. It runs once or twice per
    training step, and a long epoch of short steps is mostly past the capacity.
    """

    def __init__(self, capacity: int = 1 << 18, seed: int = 0) -> None:
        self.capacity = max(1, int(capacity))
        self.values = array("d")
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._rng = random.Random(seed)
        self._w = 1.0  # algorithm L's running weight
        self._next: float = math.inf  # the count at which the next value is kept (once full)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.min:  # comparisons, not min()/max(): this runs twice per training step
            self.min = value
        if value > self.max:
            self.max = value
        if len(self.values) < self.capacity:
            self.values.append(value)
            if len(self.values) == self.capacity:
                self._draw_next(self.count)
        elif self.count == self._next:
            self._keep(value, self.count)

    def extend(self, values: Sequence[float]) -> None:
        """As ``add`` for each value in turn (the same values kept), at C speed but for those kept."""
        if not values:
            return
        room = max(0, self.capacity - len(self.values))
        if room:
            self.values.extend(values[:room])
            self.count += min(room, len(values))
            if len(self.values) == self.capacity:
                self._draw_next(self.count)
        passed = values[room:]
        first = self.count  # the count before the first of ``passed``
        self.count += len(passed)
        self.total = sum(values, self.total)  # compensated on Python 3.12+: within rounding of add's
        self.min = min(self.min, min(values))
        self.max = max(self.max, max(values))
        while self._next <= self.count:
            at = int(self._next)
            self._keep(passed[at - first - 1], at)

    def _draw_next(self, count: int) -> None:
        """Algorithm L, after the ``count``-th value: the weight shrinks as the stream grows; the gap to the
        next value kept is geometric."""
        self._w *= math.exp(math.log(1.0 - self._rng.random()) / self.capacity)
        if self._w >= 1.0:
            self._next = count + 1
        elif self._w <= 0.0:  # underflow, after astronomically many values: nothing more is kept
            self._next = math.inf
        else:
            self._next = count + math.floor(math.log(1.0 - self._rng.random()) / math.log1p(-self._w)) + 1

    def _keep(self, value: float, count: int) -> None:
        # random() * capacity, not randrange (a quarter of its cost): with 53 random bits over at most
        # a few million slots, no slot is measurably favoured
        self.values[int(self._rng.random() * self.capacity)] = value
        self._draw_next(count)

    def step_stats(self) -> StepStats | None:
        return step_stats(self.values, self.total, self.count, (self.min, self.max)) if self.count else None


class Series:
    """A time series kept to at most ``capacity`` points by dropping every other point when full.

    Dropping (not averaging) keeps real readings, so quantiles of the kept points stay unbiased; the
    mean and maximum are tracked exactly over every reading.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self.times = array("d")
        self.values = array("d")
        self.count = 0
        self.total = 0.0
        self.peak: float | None = None
        self.last: float | None = None  # the latest reading, kept or not (the live view shows it)
        self._stride = 1
        self._skip = 0

    def add(self, t: float, value: float | None) -> None:
        if value is None:
            return
        self.last = value
        self.count += 1
        self.total += value
        self.peak = value if self.peak is None else max(self.peak, value)
        if self._skip:
            self._skip -= 1
            return
        self._skip = self._stride - 1
        self.times.append(t)
        self.values.append(value)
        if len(self.values) >= self.capacity:
            self.times = self.times[::2]
            self.values = self.values[::2]
            # The point after the last one kept before halving is the next one on the doubled grid's
            # time: the skip set above (the old stride less one) already counts to it.
            self._stride *= 2

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        return quantile(sorted(self.values), q)

    def points(self) -> list[tuple[float, float]]:
        return list(zip(self.times, self.values, strict=True))
