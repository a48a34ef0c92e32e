"""Latency statistics: percentiles and spread of a list of per-iteration times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-iteration latencies, all in milliseconds.

    Percentiles use linear interpolation (numpy's default), so p50 <= p90 <= p99 always holds.
    ``std`` is the population standard deviation (ddof=0).
    """

    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def summarize(samples_ms: Sequence[float]) -> LatencyStats:
    """Summarize latencies (ms). Raises ValueError for an empty sequence."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples to summarize")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return LatencyStats(
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        mean=float(x.mean()),
        min=float(x.min()),
        max=float(x.max()),
        std=float(x.std()),
    )


def median_drift(samples_ms: Sequence[float]) -> float:
    """Relative difference between the medians of the first and second half of the samples.

    A small drift (a few percent) means more repetitions would not move the median: the
    timing loop uses it to decide whether the median is stable. Returns ``inf`` for fewer
    than 4 samples.
    """
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size < 4:
        return float("inf")
    half = x.size // 2
    a, b = float(np.median(x[:half])), float(np.median(x[half:]))
    return abs(a - b) / max(min(a, b), 1e-12)
