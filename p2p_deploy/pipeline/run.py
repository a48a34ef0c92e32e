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
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from p2p_deploy.atomic import clean_stale_temps, write_json
from p2p_deploy.media.files import OUTPUT_MARKER, InputPlan, Job, output_collisions, plan_inputs
from p2p_deploy.media.video import odd_size_output
from p2p_deploy.paths import escape_reason
from p2p_deploy.pipeline.items import DONE, Crash, Failed, Frame
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.stages import Stopped, Writer, put, read_jobs
from p2p_deploy.pipeline.summary import FAILURES_NAME, RunSummary, write_failures
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A planned run: what will be read (Jobs and pre-failed items), what is skipped, and how
    many frames are expected from images (videos add theirs when the reader opens them: each
    video is opened once). ``cleaned``: temporary files of killed earlier runs removed from
    the output folder."""

    plan: InputPlan
    work: list[Job | Failed]
    skipped: list[Job]
    expected_frames: int
    cleaned: list[Path] = field(default_factory=list)


def prepare(src: str | Path, out_dir: str | Path | None, opts: RunOptions) -> Prepared:
    """Plan the jobs of ``src``; existing outputs are skipped unless ``opts.overwrite``.

    Also removes the stale temporary files that killed runs left in the output folder and
    fails inputs that are links into the output folder (an output would replace its own input).
    Nothing is decoded here: a video is opened once, by the reader. A video written as
    MJPG/.avi (an odd frame size its codec cannot store, decided by the writer) counts as done
    too, so a resumed run skips it.
    """
    plan = plan_inputs(src, out_dir, opts.codec)
    cleaned = clean_stale_temps(plan.out_dir)
    if cleaned:
        log.info(
            "removed %d temporary file(s) that killed runs left in %s", len(cleaned), plan.out_dir
        )
    clashes = output_collisions(plan)
    dsts = {job.dst for job in plan.jobs}
    # Entries that are no plain readable file or folder: one failure each, never opened.
    work: list[Job | Failed] = [
        Failed(Job("unreadable", path, path, str(path)), f"{path}: {why}.")
        for path, why in plan.unreadable
    ]
    skipped: list[Job] = []
    expected = 0
    for job in plan.jobs:
        real = job.src.resolve()
        if real in dsts or _is_within(real, plan.out_dir):
            work.append(
                Failed(
                    job,
                    f"{job.src}: is a link to {real}, inside the output folder {plan.out_dir}; "
                    "an input is never overwritten.",
                )
            )
        elif why := escape_reason(plan.out_dir, os.path.relpath(job.dst, plan.out_dir)):
            # A link inside the output folder would carry the output elsewhere.
            work.append(Failed(job, f"{job.src}: its output {job.dst} is not written ({why})."))
        elif job in clashes:
            work.append(
                Failed(
                    job,
                    f"{job.src}: not written, as its output {job.dst.name} is "
                    f"{clashes[job].src.name}'s (rename one of them).",
                )
            )
        elif not opts.overwrite and (
            job.dst.exists() or (job.kind == "video" and odd_size_output(job.dst).exists())
        ):
            skipped.append(job)
        else:
            work.append(job)
            expected += 1 if job.kind == "image" else 0
    return Prepared(plan, work, skipped, expected, cleaned)


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def run_pipeline(
    prepared: Prepared,
    runner: Runner,
    opts: RunOptions,
    on_frame: Callable[[int], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> RunSummary:
    """Translate every job of ``prepared`` with the (activated) ``runner``.

    Writes outputs under ``prepared.plan.out_dir`` and its ``failures.json``; returns the
    summary. ``on_frame(n)`` is called from the writer thread after each frame written,
    ``on_failure(reason)`` after each failure and ``on_total(n)`` from the reader thread with
    the frame count of each video it opens (for progress bars / messages). Ctrl-C (or any
    exception) stops both threads and removes a half-written video before re-raising.
    """
    plan = prepared.plan
    summary = RunSummary(
        runner=runner.describe(),
        skipped=len(prepared.skipped),
        ignored=len(plan.ignored),
        hidden=len(plan.hidden),
        own_outputs=len(plan.own_outputs),
        own_output_dirs=[str(p) for p in plan.own_outputs],
    )
    in_q: queue.Queue = queue.Queue(maxsize=opts.in_queue_size)
    out_q: queue.Queue = queue.Queue(maxsize=2)  # batches
    stop = threading.Event()
    taken = {job.dst for job in plan.jobs}  # an odd-size video's MJPG/.avi must not take one
    # The marker goes in with the first output: a run that writes nothing leaves no marker.
    writer = Writer(opts, summary, on_frame, on_failure, taken)
    writer.before_first_write = lambda: mark_output_dir(plan.out_dir)
    reader_t = threading.Thread(
        target=read_jobs,
        args=(prepared.work, runner.image_size, opts, in_q, stop, on_total),
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
    try:
        write_failures(plan.out_dir, summary)
    except OSError as exc:  # e.g. the disk that failed the outputs is full
        summary.failures_error = (
            f"{plan.out_dir / FAILURES_NAME}: cannot write the list of failures "
            f"({exc.strerror or exc})"
        )
    return summary


def mark_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` with its :data:`OUTPUT_MARKER` (so that a later run over a tree
    holding it skips it); called before the run's first output is written there, never
    before. Best effort: a folder that cannot be written fails each output with the OS's
    reason instead, one line per input."""
    marker = out_dir / OUTPUT_MARKER
    if marker.is_file():
        return
    try:
        write_json(marker, {"format": "p2p-deploy/run-output"})
    except OSError as exc:
        log.debug("%s: not written (%s)", marker, exc)


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
