"""Property-based tests (hypothesis) for the bounded statistics: whatever the stream, counts, sums and
extremes are exact, the kept values are real readings, and quantiles stay within what the bounded
memory allows."""

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from colab_magic.stats import Reservoir, Series, quantile, step_stats

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
QS = (0.1, 0.5, 0.9, 0.95)


@given(st.lists(finite, min_size=1, max_size=200))
def test_summary_matches_numpy(values):
    s = step_stats(values)
    assert s.n == len(values) and s.min == min(values) and s.max == max(values)
    assert s.mean == pytest.approx(math.fsum(values) / len(values), rel=1e-12, abs=1e-9)
    for q, got in zip(QS, (s.p10, s.median, s.p90, s.p95)):
        assert got == pytest.approx(float(np.percentile(values, 100 * q)), rel=1e-12, abs=1e-9)


@given(st.lists(finite, min_size=0, max_size=300), st.integers(min_value=1, max_value=64))
def test_reservoir_counts_sums_and_extremes_are_exact(stream, capacity):
    r = Reservoir(capacity=capacity, seed=1)
    for v in stream:
        r.add(v)
    assert r.count == len(stream) and len(r.values) == min(len(stream), capacity)
    assert not Counter(r.values) - Counter(stream)  # every kept value was in the stream
    s = r.step_stats()
    if not stream:
        assert s is None
        return
    assert (s.n, s.min, s.max) == (len(stream), min(stream), max(stream))
    assert s.mean == pytest.approx(math.fsum(stream) / len(stream), rel=1e-9, abs=1e-6)
    if len(stream) <= capacity:  # nothing dropped yet: the quantiles are the data's own
        assert s.median == pytest.approx(float(np.percentile(stream, 50)), rel=1e-12, abs=1e-9)
        assert s.p95 == pytest.approx(float(np.percentile(stream, 95)), rel=1e-12, abs=1e-9)
    assert min(stream) <= s.p10 <= s.median <= s.p90 <= s.p95 <= max(stream)


SHAPES = ("random", "ascending", "descending", "blocks", "heavy tail")


def _stream(shape: str, seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.random(n)
    if shape == "ascending":
        data.sort()
    elif shape == "descending":
        data = -np.sort(-data)
    elif shape == "blocks":  # long runs of one value, as step times are when a phase changes
        data = np.repeat(rng.integers(0, 5, n // 1000 + 1), 1000)[:n].astype(float)
    elif shape == "heavy tail":
        data = rng.pareto(1.5, n)
    return data


@given(st.lists(finite, min_size=0, max_size=300), st.integers(min_value=1, max_value=64),
       st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=20), st.integers(0, 99))
def test_reservoir_extend_keeps_what_add_keeps(stream, capacity, chunks, seed):
    # PyTorch's hot path tells the step timer its steps in batches: the sample must be the one that
    # adding them one by one keeps, whatever the batches' sizes (empty ones, ones across the capacity)
    one, batched = Reservoir(capacity=capacity, seed=seed), Reservoir(capacity=capacity, seed=seed)
    for v in stream:
        one.add(v)
    i, k = 0, 0
    while i < len(stream):
        size = chunks[k % len(chunks)] or (1 if k % 2 else 0)
        batched.extend(stream[i:i + size])
        i, k = i + size, k + 1
    assert list(batched.values) == list(one.values)
    assert (batched.count, batched.min, batched.max) == (one.count, one.min, one.max)
    assert batched.total == pytest.approx(one.total, rel=1e-12, abs=1e-6)


def test_reservoir_keeps_each_position_equally_often():
    # algorithm L's skips: each of 40 values is kept with probability capacity / 40 = 0.125. Over 20,000
    # seeds a position's share has a standard deviation of 0.0023: 0.125 +- 0.012 is over 5 of them
    capacity, n, seeds = 5, 40, 20_000
    kept = Counter()
    for seed in range(seeds):
        r = Reservoir(capacity=capacity, seed=seed)
        r.extend([float(i) for i in range(n)])
        kept.update(int(v) for v in r.values)
    shares = [kept[i] / seeds for i in range(n)]
    assert all(abs(share - capacity / n) < 0.012 for share in shares), shares


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(SHAPES), st.integers(min_value=0, max_value=2**32 - 1))
def test_reservoir_quantiles_are_within_the_sampling_bound(shape, seed):
    # A uniform sample of c values: its CDF is within eps of the stream's everywhere except with
    # probability 2 exp(-2 c eps^2) (DKW; it holds for sampling without replacement too). eps is set
    # for 1e-9: a failure here is a biased sample, not bad luck.
    n, capacity = 20_000, 1000
    data = _stream(shape, seed, n)
    r = Reservoir(capacity=capacity, seed=seed)
    for v in data.tolist():
        r.add(v)
    eps = math.sqrt(math.log(2 / 1e-9) / (2 * capacity)) + 1 / capacity
    ordered = np.sort(data)
    s = r.step_stats()
    for q, value in zip(QS, (s.p10, s.median, s.p90, s.p95)):
        below = np.searchsorted(ordered, value, side="left") / n
        at_most = np.searchsorted(ordered, value, side="right") / n
        assert below <= q + eps and at_most >= q - eps, (shape, q, below, at_most)


@given(st.lists(st.one_of(st.none(), finite), min_size=0, max_size=400), st.sampled_from([4, 8, 16, 64]))
@example(values=[float(i) for i in range(37)], capacity=4)  # halved three times: always checked, not by chance
def test_series_is_exact_where_it_promises_and_evenly_decimated(values, capacity):
    s = Series(capacity=capacity)
    for i, v in enumerate(values):
        s.add(float(i), v)
    real = [(float(i), v) for i, v in enumerate(values) if v is not None]
    assert s.count == len(real) and len(s.values) <= capacity and len(s.times) == len(s.values)
    if not real:
        assert s.mean is None and s.peak is None and s.quantile(0.5) is None
        return
    assert s.peak == max(v for _, v in real)
    assert s.mean == pytest.approx(math.fsum(v for _, v in real) / len(real), rel=1e-9, abs=1e-6)
    # Decimation keeps every stride-th reading from the first: real readings, evenly spaced in order.
    stride = s._stride
    assert s.points() == real[::stride]
    if len(real) < capacity:
        assert s.quantile(0.95) == pytest.approx(quantile(sorted(v for _, v in real), 0.95))
    kept = sorted(s.values)
    assert kept[0] <= s.quantile(0.5) <= kept[-1]
    # Half the capacity or more is always in use once it has filled: the plot keeps its resolution.
    assert len(s.values) >= min(len(real), capacity // 2)
