"""Every backend x precision x batch size, side by side, in one run.

The harness takes a list of :class:`Candidate` (how to open one runner) and times each at each
batch size on the same inputs. The eager fp32 torch candidate is the *baseline*: it runs first,
its outputs are the accuracy reference, and its latency at the same batch is the denominator of
every ``speedup_vs_eager`` in the same run. Precision labels are read from the opened runner
(which verified them), never from the candidate's name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from p2p_deploy.bench.accuracy import compare
from p2p_deploy.bench.memory import PeakMemory
from p2p_deploy.bench.stats import summarize
from p2p_deploy.bench.timing import TimingPolicy, TimingResult, time_callable
from p2p_deploy.errors import P2PError
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One backend configuration to benchmark.

    Attributes:
        label: short name for tables and plots, e.g. ``torch eager`` or ``onnxruntime CPU``.
        open: returns a *not yet entered* :class:`Runner`; the harness enters and closes it.
        baseline: True for eager fp32 torch (the reference of accuracy and speedup).
        device: where it will run (``cpu``/``cuda:0``), used to pick memory probes before opening.
        source: the model file it reads (for the report).
    """

    label: str
    open: Callable[[], Runner]
    baseline: bool = False
    device: str = "cpu"
    source: str | None = None


@dataclass
class Skipped:
    """A candidate (or one of its batch sizes) that could not run, and why."""

    label: str
    reason: str
    batch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "batch": self.batch, "reason": self.reason}


@dataclass
class HarnessResult:
    """Rows (one per candidate x batch, JSON-ready dicts) and what was skipped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def make_inputs(
    image_size: int, count: int, seed: int = 0, images: np.ndarray | None = None
) -> np.ndarray:
    """The input pool every candidate sees: (count, 3, S, S) float32 in [-1, 1].

    ``images`` (N, 3, S, S) real images are used first (repeated when fewer than ``count``);
    otherwise seeded uniform noise, identical for every candidate of the run.
    """
    if images is not None and len(images) > 0:
        reps = -(-count // len(images))
        return np.ascontiguousarray(np.concatenate([images] * reps)[:count], dtype=np.float32)
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(count, 3, image_size, image_size)).astype(np.float32)


def _latency_row(
    runner: Runner,
    cand: Candidate,
    batch: int,
    e2e: TimingResult,
    model: TimingResult | None,
) -> dict[str, Any]:
    lat = summarize(e2e.samples_ms)
    row: dict[str, Any] = {
        "label": cand.label,
        "backend": runner.backend,
        "precision": runner.precision,
        "device": runner.device,
        "batch": batch,
        "describe": runner.describe(),
        "latency_ms": lat.to_dict(),
        # Images per second over the whole timed phase: batch / mean latency.
        "throughput_ips": round(batch * 1e3 / lat.mean, 3),
        "speedup_vs_eager": None,
        "max_abs_err": None,
        "psnr_db": None,
        "peak_host_rss_mb": None,
        "peak_gpu_mem_mb": None,
        "iterations": e2e.iterations,
        "warmup_iterations": e2e.warmup_iterations,
        "median_stable": e2e.stable,
        "median_drift_pct": round(100 * e2e.median_drift, 2)
        if np.isfinite(e2e.median_drift)
        else None,
        "end_to_end_ms": round(lat.p50, 4),
        "model_ms": None,
        "baseline": cand.baseline,
        "source": cand.source,
    }
    if model is not None and model.model_ms:
        m = summarize(model.model_ms)
        row["model_ms"] = round(m.p50, 4)
        row["model_latency_ms"] = m.to_dict()
    return row


def run_benchmark(
    candidates: Sequence[Candidate],
    batches: Sequence[int],
    policy: TimingPolicy,
    inputs: np.ndarray,
    on_progress: Callable[[str], None] | None = None,
) -> HarnessResult:
    """Time every candidate at every batch size on ``inputs``.

    Args:
        candidates: at most one with ``baseline=True``; it is run first whatever its position.
        batches: batch sizes (each <= len(inputs)).
        policy: warm-up, duration and stopping rule for every row.
        inputs: (N, 3, S, S) float32 in [-1, 1]; batch b uses the first b images.
        on_progress: called with one line before each row (the CLI drives a progress bar).
    Returns:
        rows in run order (baseline first) and the skipped candidates/batches with reasons.
    """
    if max(batches) > len(inputs):
        raise ValueError(f"largest batch {max(batches)} exceeds the {len(inputs)} input images")
    ordered = sorted(candidates, key=lambda c: not c.baseline)
    result = HarnessResult()
    reference: np.ndarray | None = None
    base_p50: dict[int, float] = {}
    for cand in ordered:
        try:
            rows = _run_candidate(cand, batches, policy, inputs, reference, result, on_progress)
        except (P2PError, ValueError, RuntimeError) as exc:
            # One candidate that cannot open or run (a shape its model does not take, a backend
            # error) is a skipped row with its reason, not the end of the whole report.
            reason = _one_line(exc)
            log.warning("%s: skipped (%s)", cand.label, reason)
            result.skipped.append(Skipped(cand.label, reason))
            continue
        if cand.baseline:
            reference = rows["__reference__"]
        for row in rows["rows"]:
            if cand.baseline:
                base_p50[row["batch"]] = row["latency_ms"]["p50"]
            result.rows.append(row)
    # Ratios only from this run's numbers: eager p50 / row p50 at the same batch.
    for row in result.rows:
        b = base_p50.get(row["batch"])
        if b is not None:
            row["speedup_vs_eager"] = round(b / row["latency_ms"]["p50"], 3)
    return result


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name for a backend's own error)."""
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else ""
    if isinstance(exc, P2PError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _run_candidate(
    cand: Candidate,
    batches: Sequence[int],
    policy: TimingPolicy,
    inputs: np.ndarray,
    reference: np.ndarray | None,
    result: HarnessResult,
    on_progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"rows": rows, "__reference__": None}
    load_mem = PeakMemory(cand.device)
    t0 = time.perf_counter()
    with load_mem:
        runner = cand.open()
        runner.__enter__()
    load_s = time.perf_counter() - t0
    try:
        if cand.baseline:
            # The reference: eager fp32 outputs for the whole pool, one image per row.
            if runner.precision != "fp32":
                raise P2PError(
                    f"{cand.label}: the baseline must be fp32, the runner says {runner.precision}."
                )
            reference = runner.infer(inputs[: max(batches)])
            out["__reference__"] = reference
        for i, batch in enumerate(batches):
            if runner.max_batch is not None and batch > runner.max_batch:
                result.skipped.append(
                    Skipped(
                        cand.label,
                        f"batch {batch} above the model's max batch {runner.max_batch}",
                        batch,
                    )
                )
                continue
            if on_progress:
                on_progress(f"{cand.label} batch {batch}")
            x = np.ascontiguousarray(inputs[:batch])
            # Peak memory over one call at this batch (buffers are sized by then), measured
            # apart from the timing: a sampler thread waking every few ms during the timed loop
            # steals a core from the backend on a small machine and skews its latency.
            with PeakMemory(runner.device) as mem:
                y = runner.infer(x)
            e2e = time_callable(lambda x=x: runner.infer(x), policy)
            # The model alone on device-resident data, timed with CUDA events on the runner's
            # stream, where the runner offers such a step (its public, optional hook).
            step = runner.device_step(x)
            model = time_callable(step.run, policy, cuda_stream=step.stream) if step else None
            row = _latency_row(runner, cand, batch, e2e, model)
            row["load_s"] = round(load_s, 3) if i == 0 else None
            row["peak_host_rss_mb"] = round(
                max(mem.peak_host_rss_mb, load_mem.peak_host_rss_mb if i == 0 else 0), 1
            )
            if mem.peak_gpu_mem_mb is not None:
                row["peak_gpu_mem_mb"] = round(
                    max(mem.peak_gpu_mem_mb, load_mem.peak_gpu_mem_mb or 0), 1
                )
            if reference is not None:
                try:
                    row.update(compare(reference[:batch], y))
                except ValueError as exc:
                    row["accuracy_error"] = str(exc)
            rows.append(row)
            log.info(
                "%s batch %d: p50 %.2f ms, %.1f img/s",
                runner.describe(),
                batch,
                row["latency_ms"]["p50"],
                row["throughput_ips"],
            )
    finally:
        runner.__exit__(None, None, None)
    return out
