"""Running a model over an INPUT: plan the jobs, start the reader and writer threads, batch
frames through the runner on the calling thread, and summarise.

    reader thread --(in_q: <= RunOptions.in_queue_size items)--> batcher + runner (this thread)
                  --(out_q: <= 2 batches)--> writer thread

Both queues are bounded, so memory does not grow with the length of a video. in_q counts
items, not frames: a job's Start/End/Failed markers take a slot each, so it holds at most
``in_queue_size`` frames (fewer when markers are queued). out_q holds lists of items, each
with at most ``batch`` frames. Items keep input order end to end (one reader, one writer), and
a job's Failed/Start/End markers travel between its frames, so batches freely span several
images or the end of one video and the start of the next. JPEG/PNG decode of a 256 px frame
costs ~1 ms against ~100 ms of model time on a CPU, so one reader and one writer thread keep
the runner busy.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p2p_deploy.media.files import InputPlan, Job, output_collisions, plan_inputs
from p2p_deploy.media.video import VideoSource
from p2p_deploy.pipeline.items import DONE, Crash, Failed, Frame
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.stages import Stopped, Writer, put, read_jobs
from p2p_deploy.pipeline.summary import RunSummary, write_failures
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A planned run: what will be read (Jobs and pre-failed items), what is skipped, and how
    many frames are expected (for the progress bar; videos by their container's count)."""

    plan: InputPlan
    work: list[Job | Failed]
    skipped: list[Job]
    expected_frames: int


def prepare(src: str | Path, out_dir: str | Path | None, opts: RunOptions) -> Prepared:
    """Plan the jobs of ``src``; existing outputs are skipped unless ``opts.overwrite``."""
    plan = plan_inputs(src, out_dir, opts.codec)
    clashes = output_collisions(plan)
    work: list[Job | Failed] = []
    skipped: list[Job] = []
    expected = 0
    for job in plan.jobs:
        if job in clashes:
            work.append(
                Failed(
                    job,
                    f"{job.src}: its output {job.dst.name} is already taken by "
                    f"{clashes[job].src.name}.",
                )
            )
        elif job.dst.exists() and not opts.overwrite:
            skipped.append(job)
        else:
            work.append(job)
            expected += _frame_estimate(job)
    return Prepared(plan, work, skipped, expected)


def _frame_estimate(job: Job) -> int:
    if job.kind == "image":
        return 1
    try:
        with VideoSource(job.src) as v:
            return v.frame_count
    except Exception:  # noqa: BLE001 - the reader reports the real problem in order
        return 0


def run_pipeline(
    prepared: Prepared,
    runner: Runner,
    opts: RunOptions,
    on_frame: Callable[[int], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> RunSummary:
    """Translate every job of ``prepared`` with the (activated) ``runner``.

    Writes outputs under ``prepared.plan.out_dir`` and its ``failures.json``; returns the
    summary. ``on_frame(n)`` is called from the writer thread after each frame written and
    ``on_failure(reason)`` after each failure (for progress bars / messages). Ctrl-C (or any
    exception) stops both threads and removes a half-written video before re-raising.
    """
    summary = RunSummary(
        runner=runner.describe(), skipped=len(prepared.skipped), ignored=len(prepared.plan.ignored)
    )
    in_q: queue.Queue = queue.Queue(maxsize=opts.in_queue_size)
    out_q: queue.Queue = queue.Queue(maxsize=2)  # batches
    stop = threading.Event()
    writer = Writer(opts, summary, on_frame, on_failure)
    reader_t = threading.Thread(
        target=read_jobs,
        args=(prepared.work, runner.image_size, opts, in_q, stop),
        name="p2p-reader",
        daemon=True,
    )
    writer_t = threading.Thread(
        target=writer.run, args=(out_q, stop), name="p2p-writer", daemon=True
    )
    t0 = time.perf_counter()
    reader_t.start()
    writer_t.start()
    try:
        try:
            _batch_loop(runner, opts.batch, in_q, out_q, stop, summary, writer)
        except Stopped:
            # `put` gave up because a worker set `stop`: the writer's own error is the cause.
            if writer.error is None:
                raise
            raise writer.error from None
        while writer_t.is_alive():  # wait in slices so Ctrl-C still reaches this thread
            writer_t.join(timeout=0.1)
        if writer.error is not None:
            raise writer.error
    except BaseException:
        stop.set()
        reader_t.join(timeout=5)
        writer_t.join(timeout=5)
        if summary.failures and not writer_t.is_alive():
            # Keep the list of what failed before the stop (best effort: the folder itself
            # may be what broke the run).
            with contextlib.suppress(OSError):
                write_failures(prepared.plan.out_dir, summary)
        raise
    finally:
        summary.seconds = time.perf_counter() - t0
    reader_t.join(timeout=5)
    write_failures(prepared.plan.out_dir, summary)
    return summary


def _batch_loop(
    runner: Runner,
    batch: int,
    in_q: queue.Queue,
    out_q: queue.Queue,
    stop: threading.Event,
    summary: RunSummary,
    writer: Writer,
) -> None:
    """Gather items until ``batch`` frames are pending, run them, pass everything on in order."""
    pending: list = []
    frames: list[Frame] = []

    def flush() -> None:
        if frames:
            t = time.perf_counter()
            outputs = runner.infer_frames(np.stack([f.model_input for f in frames]))
            summary.model_seconds += time.perf_counter() - t
            summary.model_frames += len(frames)
            for f, out in zip(frames, outputs, strict=True):
                f.output = out
        if pending:
            put(out_q, list(pending), stop)
        pending.clear()
        frames.clear()

    while True:
        if writer.error is not None:
            raise writer.error
        if stop.is_set():
            raise RuntimeError("pipeline stopped")
        try:
            item = in_q.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is DONE:
            flush()
            put(out_q, DONE, stop)
            return
        if isinstance(item, Crash):
            raise item.error
        pending.append(item)
        if isinstance(item, Frame):
            frames.append(item)
            if len(frames) >= batch:
                flush()
