"""Timing one callable honestly: warm-up by time, then repetitions until a stable median.

Each iteration is timed on its own (latency, not pipelined throughput). On the CPU the clock is
``time.perf_counter``. When a CUDA stream is given, CUDA events are recorded on that stream
around the call and the stream is synchronised after every iteration, so the event time is the
GPU time of the work that call enqueued (the *model* time) while the host clock still measures
the whole call (the *end-to-end* time, host-device copies included).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2p_deploy.bench.load import LoadMeter, LoadSample
from p2p_deploy.bench.stats import median_drift

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingPolicy:
    """How long and how often to time.

    Attributes:
        warmup_s: seconds of untimed calls first (at least one call), so lazy allocations,
            autotuning (cudnn.benchmark, ORT arena growth) and clocks settle.
        duration_s: seconds of timed calls; at least ``min_iters`` calls are made regardless.
        min_iters: fewest timed calls (percentiles of fewer calls mean little).
        max_iters: most timed calls (keeps tiny models from producing huge sample lists).
        stable_tol: the median is "stable" when the medians of the first and second half of
            the samples differ by at most this fraction.
        extend_factor: when the median is not stable after ``duration_s``, keep timing up to
            ``extend_factor * duration_s`` in total before giving up (and saying so).
    """

    warmup_s: float = 1.0
    duration_s: float = 5.0
    min_iters: int = 10
    max_iters: int = 10_000
    stable_tol: float = 0.05
    extend_factor: float = 2.0


@dataclass(frozen=True)
class TimingResult:
    """Per-iteration times of one timed callable.

    Attributes:
        samples_ms: host wall time of each timed call, ms (end-to-end).
        model_ms: GPU time of each call from CUDA events on the runner's stream, ms; None on CPU.
        warmup_iterations: untimed calls made first.
        iterations: timed calls.
        elapsed_s: wall time of the timed phase.
        median_drift: relative first-half/second-half median difference of ``samples_ms``.
        stable: ``median_drift <= policy.stable_tol``.
        load: the CPU this process got and the CPU other processes took during the timed
            phase (:mod:`bench.load`); its ``disturbed`` marks a timing that competed.
    """

    samples_ms: list[float]
    model_ms: list[float] | None
    warmup_iterations: int
    iterations: int
    elapsed_s: float
    median_drift: float
    stable: bool
    load: LoadSample | None = None


def time_callable(
    fn: Callable[[], Any],
    policy: TimingPolicy,
    cuda_stream: Any | None = None,
) -> TimingResult:
    """Time ``fn()`` under ``policy``.

    Args:
        fn: one iteration. On the CPU it must return only when its work is done (runners
            return numpy arrays, so it does). With ``cuda_stream`` it may return before the GPU
            finishes: the stream is synchronised after each call.
        policy: warm-up, duration and stopping rule.
        cuda_stream: a ``torch.cuda.Stream`` the work is enqueued on; enables model time from
            CUDA events.
    """
    sync = cuda_stream.synchronize if cuda_stream is not None else None
    # Warm-up by time, at least one call.
    warm = 0
    t_end = time.perf_counter() + max(policy.warmup_s, 0.0)
    while True:
        fn()
        if sync:
            sync()
        warm += 1
        if time.perf_counter() >= t_end:
            break

    samples: list[float] = []
    events: list[tuple[Any, Any]] = []
    make_event = None
    if cuda_stream is not None:
        import torch

        def make_event() -> Any:  # noqa: F811 - one definition per branch
            return torch.cuda.Event(enable_timing=True)

    meter = LoadMeter().start()
    start = time.perf_counter()
    deadline = start + policy.duration_s
    hard_deadline = start + policy.duration_s * max(policy.extend_factor, 1.0)
    while len(samples) < policy.max_iters:
        if make_event is not None:
            ev0, ev1 = make_event(), make_event()
            t0 = time.perf_counter()
            ev0.record(cuda_stream)
            fn()
            ev1.record(cuda_stream)
            sync()
            samples.append((time.perf_counter() - t0) * 1e3)
            events.append((ev0, ev1))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        now = time.perf_counter()
        if len(samples) < policy.min_iters:
            continue
        # Past the deadline, re-check the median every few calls (a sort per call adds up).
        if now >= hard_deadline or (now >= deadline and len(samples) % 4 == 0):
            drift = median_drift(samples)
            if drift <= policy.stable_tol or now >= hard_deadline:
                break
    elapsed = time.perf_counter() - start
    load = meter.stop()
    drift = median_drift(samples)
    stable = drift <= policy.stable_tol
    if not stable:
        log.warning(
            "median not stable after %d iterations (%.1f%% drift between halves): "
            "the machine is busy or the duration too short",
            len(samples),
            100 * drift,
        )
    model = [float(a.elapsed_time(b)) for a, b in events] if events else None
    if load.disturbed:
        log.warning("timed under load: %s", load.describe())
    return TimingResult(samples, model, warm, len(samples), elapsed, drift, stable, load)
