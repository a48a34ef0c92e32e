"""Statistics and the timing loop."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_deploy.bench.stats import median_drift, summarize
from p2p_deploy.bench.timing import TimingPolicy, time_callable


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.001, 1e4, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_ordered(samples):
    s = summarize(samples)
    eps = 1e-9 * max(samples)
    assert s.min - eps <= s.p50 <= s.p90 + eps <= s.p99 + 2 * eps <= s.max + 3 * eps
    assert s.min - eps <= s.mean <= s.max + eps
    assert s.std >= 0


def test_summarize_known_values():
    s = summarize(list(range(1, 101)))  # 1..100
    assert s.p50 == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1)
    assert s.p99 == pytest.approx(99.01)
    assert (s.min, s.max, s.mean) == (1, 100, 50.5)
    with pytest.raises(ValueError):
        summarize([])


def test_median_drift():
    assert median_drift([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert median_drift([1.0, 1.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert median_drift([1.0, 2.0]) == float("inf")


def test_time_callable_warms_up_and_times_for_the_duration():
    calls = []

    def fn():
        calls.append(time.perf_counter())
        time.sleep(0.002)

    pol = TimingPolicy(warmup_s=0.02, duration_s=0.06, min_iters=5, stable_tol=10.0)
    res = time_callable(fn, pol)
    assert res.warmup_iterations >= 1
    assert res.iterations == len(res.samples_ms) == len(calls) - res.warmup_iterations
    assert res.iterations >= 5
    assert res.elapsed_s >= 0.06
    assert all(s >= 2.0 for s in res.samples_ms)  # each call sleeps 2 ms
    assert res.model_ms is None and res.stable


def test_time_callable_min_iters_beats_duration_and_max_iters_caps():
    res = time_callable(
        lambda: time.sleep(0.001), TimingPolicy(warmup_s=0, duration_s=1e-6, min_iters=7)
    )
    assert res.iterations == 7 and res.warmup_iterations == 1
    res = time_callable(
        lambda: None, TimingPolicy(warmup_s=0, duration_s=10, min_iters=1, max_iters=50)
    )
    assert res.iterations == 50


def test_unstable_median_extends_then_says_so():
    """A callable that gets slower with every call never stabilises: timing extends to the cap."""
    n = [0]

    def fn():
        n[0] += 1
        time.sleep(0.0005 * n[0])

    pol = TimingPolicy(warmup_s=0, duration_s=0.03, min_iters=4, stable_tol=0.05, extend_factor=3)
    res = time_callable(fn, pol)
    assert not res.stable and res.median_drift > 0.05
    assert res.elapsed_s >= 0.09 * 0.95
