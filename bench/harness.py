"""Every backend x precision x batch size, side by side, in one run.

Each row times what ``p2p run`` calls: :meth:`Runner.infer_frames` on uint8 BGR frames (a GPU
runner uploads uint8 from pinned memory and converts on the device), beside the device time of
the same work from CUDA events, and the *stream* throughput: batches submitted back to back
with the runner's double buffering (:meth:`Runner.submit_frames`), as the pipeline does.

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
from p2p_deploy.errors import P2PError, first_line
from p2p_deploy.imaging import tensor_to_bgr8
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
        batches: the batch sizes it is timed at (None: all of the run's); compiled rows
            compile once per shape, so they are timed at fewer.
    """

    label: str
    open: Callable[[], Runner]
    baseline: bool = False
    device: str = "cpu"
    source: str | None = None
    batches: tuple[int, ...] | None = None


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
    image_size: int | tuple[int, int],
    count: int,
    seed: int = 0,
    images: np.ndarray | None = None,
) -> np.ndarray:
    """The input pool every candidate sees: (count, 3, H, W) float32 in [-1, 1] (``image_size``
    S for S x S, or (H, W)).

    ``images`` (N, 3, S, S) real images are used first (repeated when fewer than ``count``);
    otherwise seeded uniform noise, identical for every candidate of the run.
    """
    if images is not None and len(images) > 0:
        reps = -(-count // len(images))
        return np.ascontiguousarray(np.concatenate([images] * reps)[:count], dtype=np.float32)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(count, 3, h, w)).astype(np.float32)


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
        "load": e2e.load.to_dict() if e2e.load is not None else None,
        "median_drift_pct": round(100 * e2e.median_drift, 2)
        if np.isfinite(e2e.median_drift)
        else None,
        "end_to_end_ms": round(lat.p50, 4),
        "timed_call": "infer_frames (uint8 frames)",
        "model_ms": None,
        "stream_ips": None,
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
    # Ratios only from this run's numbers: eager p50 / row p50 at the same batch, and the
    # same for the device time where both rows have one.
    base_model = {r["batch"]: r.get("model_ms") for r in result.rows if r.get("baseline")}
    for row in result.rows:
        b = base_p50.get(row["batch"])
        if b is not None:
            row["speedup_vs_eager"] = round(b / row["latency_ms"]["p50"], 3)
        bm, m = base_model.get(row["batch"]), row.get("model_ms")
        row["device_speedup_vs_eager"] = round(bm / m, 3) if bm and m else None
        row["copy_bound"] = copy_bound(row)
    return result


COPY_BOUND_RATIO = 1.5


def copy_bound(row: dict[str, Any]) -> bool | None:
    """True when a row's wall time is more than 1.5x its device time: the host copies, not
    the model, set its speed (no speed-up is concluded from its wall time). None without a
    device time."""
    m = row.get("model_ms")
    if not m:
        return None
    return row["latency_ms"]["p50"] > COPY_BOUND_RATIO * m


def stream_throughput(runner: Runner, frames: np.ndarray, policy: TimingPolicy) -> float:
    """Frames per second with batches submitted back to back, up to the runner's
    ``frames_in_flight`` pending, as the pipeline's batcher does (the host fills the next batch
    while the device works). Timed for about a third of ``policy.duration_s`` after a warm-up
    of two batches."""
    pending: list = []

    def one() -> None:
        pending.append(runner.submit_frames(frames))
        while len(pending) > runner.frames_in_flight:
            pending.pop(0).result()

    for _ in range(2):
        one()
    while pending:
        pending.pop(0).result()
    n = 0
    t0 = time.perf_counter()
    budget = max(policy.duration_s / 3, 0.05)
    while n < 3 or time.perf_counter() - t0 < budget:
        one()
        n += 1
    while pending:
        pending.pop(0).result()
    return round(n * frames.shape[0] / (time.perf_counter() - t0), 3)


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name for a backend's own error)."""
    first = first_line(exc, 300)
    if isinstance(exc, P2PError) or first == type(exc).__name__:
        return first
    return f"{type(exc).__name__}: {first}"


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
        for i, batch in enumerate(b for b in batches if not cand.batches or b in cand.batches):
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
            frames = tensor_to_bgr8(x)  # what `p2p run` hands the runner: uint8 BGR frames
            # Peak memory over one call at this batch (buffers are sized by then), measured
            # apart from the timing: a sampler thread waking every few ms during the timed loop
            # steals a core from the backend on a small machine and skews its latency. The
            # first call at a shape also compiles / autotunes / captures: timed on its own.
            t_first = time.perf_counter()
            with PeakMemory(runner.device) as mem:
                y = runner.infer(x)  # float32 in and out: the accuracy check's exact outputs
                # A backend whose outputs are not finite refuses frames (no black frames from
                # NaN): its row times the float call, and its accuracy says what is wrong.
                finite = bool(np.isfinite(y).all())
                if finite:
                    runner.infer_frames(frames)
            first_s = time.perf_counter() - t_first
            if finite:
                e2e = time_callable(lambda f=frames: runner.infer_frames(f), policy)
            else:
                e2e = time_callable(lambda x=x: runner.infer(x), policy)
            # The same work on device-resident data (conversions and model), timed with CUDA
            # events on the runner's stream, where the runner offers such a step (public,
            # optional hooks); else the model alone on float input.
            step = (runner.frames_device_step(frames) if finite else None) or runner.device_step(x)
            model = time_callable(step.run, policy, cuda_stream=step.stream) if step else None
            row = _latency_row(runner, cand, batch, e2e, model)
            row["frame"] = [int(x.shape[2]), int(x.shape[3])]  # (H, W) it ran at
            # Without double buffering, back-to-back batches are the timed calls themselves.
            row["stream_ips"] = (
                stream_throughput(runner, frames, policy)
                if runner.frames_in_flight > 1 and finite
                else row["throughput_ips"]
            )
            if not finite:
                row["timed_call"] = "infer (float32: the outputs are not finite)"
            row["first_call_s"] = round(first_s, 3)
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
