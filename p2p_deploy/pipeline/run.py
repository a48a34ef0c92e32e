"""Running a model over an INPUT: plan the jobs, decode and encode on one pool of worker
threads, batch frames through the runner on the calling thread, and summarise.

    submitter thread: jobs, in order -> decoding tasks on the pool, one JobStream each
    batcher (this thread): JobStreams in order -> batches of frames -> runner.submit_frames
                           (two batches in flight on a GPU) -> items, in order -> Encoder
    Encoder: encoding tasks on the same pool: one per image, a VideoWriter per video
    pool: ``workers`` threads (see ``pipeline.stages.Workers``: no task waits for another)

Order is kept end to end: the batcher consumes the jobs' streams in input order, and each
job's outcome is recorded by its index, so the summary and ``failures.json`` list failures in
input order whatever the threads do; a video is decoded by one thread and written by one
writer, in frame order, while several images and videos proceed at once. Memory is bounded:
see ``RunOptions.frames_in_flight``. Batches span the end of one job and the start of the
next, and hold frames of one shape only. Outputs are written atomically (images: temp file
+ rename; videos: temp name, renamed at their end), a failing input is one line and the
others go on, Ctrl-C stops every thread and removes a half-written video.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from p2p_deploy.atomic import clean_stale_temps, write_json
from p2p_deploy.media.files import OUTPUT_MARKER, InputPlan, Job, output_collisions, plan_inputs
from p2p_deploy.media.native import filtered_native_stderr
from p2p_deploy.media.video import odd_size_output
from p2p_deploy.paths import Resolver, escape_reason
from p2p_deploy.pipeline.items import End, Failed, Frame
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.stages import (
    Encoder,
    Fitter,
    JobStream,
    Outcomes,
    StageClock,
    Stopped,
    Tokens,
    VideoDecoder,
    Workers,
    acquire,
    decode_image,
    get,
    make_fitter,
    put,
)
from p2p_deploy.pipeline.summary import FAILURES_NAME, RunSummary, write_failures
from p2p_deploy.runners.base import Pending, Runner

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
    resolve = Resolver()  # each folder's path resolved once, not once per file
    for job in plan.jobs:
        real = resolve(job.src)
        if real in dsts or _is_within(real, plan.out_dir):
            work.append(
                Failed(
                    job,
                    f"{job.src}: is a link to {real}, inside the output folder {plan.out_dir}; "
                    "an input is never overwritten.",
                )
            )
        elif why := escape_reason(plan.out_dir, os.path.relpath(job.dst, plan.out_dir), resolve):
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


def native_runner(runner: Runner, opts: RunOptions) -> Runner:
    """``runner`` as the pipeline runs it for ``opts``: with ``--resize native`` a
    :class:`~p2p_deploy.runners.tiling.TilingRunner` over it (tiles up to ``opts.max_tile``,
    ``tile_batch`` = ``opts.batch``); for the square modes ``runner`` itself, once checked to
    take its S x S. Idempotent.

    Raises:
        P2PError: ``--max-tile`` does not suit the model, or a square mode for a model that
            does not take its own square (one line, before any work).
    """
    from p2p_deploy.errors import P2PError
    from p2p_deploy.media.resize import NATIVE
    from p2p_deploy.runners.tiling import TilingRunner, tile_limit

    name = runner.path.name if runner.path is not None else "the model"
    if opts.resize != NATIVE:
        s = runner.image_size
        if not runner.size_range.accepts((s, s)):
            raise P2PError(
                f"{name} does not take {s}x{s} frames ({runner.size_range.describe()}); "
                "use --resize native."
            )
        return runner
    if isinstance(runner, TilingRunner):
        return runner
    limit = tile_limit(runner.size_range, opts.max_tile, name)
    return TilingRunner(runner, limit, opts.batch)


def _is_within(child: Path, parent: Path) -> bool:
    return child.is_relative_to(parent)  # lexical (both resolved): ``parent`` itself counts


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
    summary (its ``stage_seconds`` say where the time went). ``on_frame(n)`` is called after
    each frame written, ``on_failure(reason)`` after each failure and ``on_total(n)`` with the
    frame count of each video when it is opened (for progress bars; from worker threads).
    Ctrl-C (or any exception) stops every thread and removes a half-written video before
    re-raising. With ``opts.resize`` ``native`` the runner is wrapped for tiling
    (:func:`native_runner`) unless the caller did it.

    Raises:
        P2PError: before any work, the model cannot take what ``opts`` asks (one line).
    """
    # The workers decode at once: native libraries' stderr lines are filtered for the whole
    # run, not in a window per decode (windows share one lock, which serialised decoding).
    with filtered_native_stderr():
        return _run(prepared, runner, opts, on_frame, on_failure, on_total)


def _run(
    prepared: Prepared,
    runner: Runner,
    opts: RunOptions,
    on_frame: Callable[[int], None] | None,
    on_failure: Callable[[str], None] | None,
    on_total: Callable[[int], None] | None,
) -> RunSummary:
    """:func:`run_pipeline`'s body."""
    runner = native_runner(runner, opts)
    fitter = make_fitter(runner, opts)
    plan = prepared.plan
    summary = RunSummary(
        runner=runner.describe(),
        skipped=len(prepared.skipped),
        ignored=len(plan.ignored),
        hidden=len(plan.hidden),
        own_outputs=len(plan.own_outputs),
        workers=opts.workers,
        own_output_dirs=[str(p) for p in plan.own_outputs],
    )
    streams = _streams(prepared.work)
    outcomes = Outcomes(len(streams), on_failure)
    stop = threading.Event()
    clock = StageClock()
    ordered: queue.SimpleQueue = queue.SimpleQueue()  # JobStreams in input order, then None
    window = Tokens(opts.window)
    index_of = {s.job: s.index for s in streams}
    taken = {job.dst for job in plan.jobs}  # an odd-size video's MJPG/.avi must not take one
    submitter: threading.Thread | None = None
    t0 = time.perf_counter()
    # The pool's threads run from here: whatever is raised from now on (Ctrl-C included) ends
    # them in the ``except`` below.
    workers = Workers(opts.workers, stop)
    try:
        encoder = Encoder(opts, index_of, outcomes, workers, clock, taken, on_frame)
        # The marker goes in with the first output: a run that writes nothing leaves none.
        encoder.before_first_write = lambda: mark_output_dir(plan.out_dir)
        submitter = threading.Thread(
            target=_submit,
            args=(streams, fitter, opts, workers, ordered, window, clock, on_total),
            name="p2p-submit",
            daemon=True,
        )
        submitter.start()
        try:
            _batch_loop(runner, opts, ordered, window, encoder, stop, summary, clock)
        except Stopped:
            # A blocking call gave up because a worker set `stop`: its error is the cause.
            if workers.error is None:
                raise
            raise workers.error from None
        workers.finish()
    except BaseException:
        stop.set()
        workers.abort()
        if submitter is not None:
            with contextlib.suppress(RuntimeError):  # Ctrl-C in its start(): not joinable yet
                submitter.join(timeout=5)
        _summarise(summary, outcomes, streams, clock)
        if summary.failures:
            # Keep the list of what failed before the stop (best effort: the folder itself
            # may be what broke the run).
            with contextlib.suppress(OSError):
                write_failures(plan.out_dir, summary)
        raise
    finally:
        summary.seconds = time.perf_counter() - t0
    submitter.join(timeout=5)
    _summarise(summary, outcomes, streams, clock)
    try:
        written = write_failures(plan.out_dir, summary)
        summary.failures_file = str(written) if written is not None else None
    except OSError as exc:  # e.g. the disk that failed the outputs is full
        summary.failures_error = (
            f"{plan.out_dir / FAILURES_NAME}: cannot write the list of failures "
            f"({exc.strerror or exc})"
        )
    return summary


def _streams(work: list[Job | Failed]) -> list[JobStream]:
    """One JobStream per work item, numbered in input order (a Failed is ready at once)."""
    out = []
    for i, w in enumerate(work):
        if isinstance(w, Failed):
            out.append(JobStream(i, w.job, ready=w))
        else:
            out.append(JobStream(i, w))
    return out


def _summarise(
    summary: RunSummary, outcomes: Outcomes, streams: list[JobStream], clock: StageClock
) -> None:
    """Counts and failures (in input order) from the jobs' outcomes."""
    summary.done = sum(1 for r in outcomes.results if r is True)
    summary.failures = [
        {"path": str(s.job.src), "reason": r}
        for s, r in zip(streams, outcomes.results, strict=True)
        if isinstance(r, str)
    ]
    summary.frames = outcomes.frames
    summary.stage_seconds = {k: round(v, 4) for k, v in clock.seconds.items()}


def _submit(
    streams: list[JobStream],
    fitter: Fitter,
    opts: RunOptions,
    workers: Workers,
    ordered: queue.SimpleQueue,
    window: Tokens,
    clock: StageClock,
    on_total: Callable[[int], None] | None,
) -> None:
    """Submitter thread: hand the streams to the batcher in order and their decoding to the
    pool, at most ``opts.window`` jobs (and ``opts.open_videos`` videos) ahead of the batcher.

    The pool runs tasks first in, first out, so the stream the batcher waits for is always
    being decoded or queued to be. An unexpected error here is handed to the batcher through
    ``ordered`` (which re-raises it): a silently dead submitter would leave the batcher
    waiting for the next stream."""
    stop = workers.stop
    videos = threading.Semaphore(opts.open_videos)
    try:
        for stream in streams:
            acquire(window, stop)  # released by the batcher when it is done with the stream
            if stream.ready is not None:
                stream.q.put(stream.ready)
            elif stream.job.kind == "video":
                # Released when the video's decoding ends; the videos holding one are ahead of
                # this one in the batcher's order, so it drains them without this thread.
                acquire(videos, stop)
                done = videos.release
                VideoDecoder(stream, fitter, opts, workers, clock, on_total, done).schedule()
            else:
                workers.submit(decode_image, stream, fitter, opts, clock)
            put(ordered, stream, stop)
        put(ordered, None, stop)
    except Stopped:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the batcher, which re-raises
        if stop.is_set():  # e.g. the pool was shut down by a stopping run: nothing to say
            return
        ordered.put(exc)


@dataclass
class _Unit:
    """Items handed to the runner together: the frames of one batch (``pending`` holds their
    outputs) and every marker between them, in input order."""

    items: list = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    pending: Pending | None = None


def _batch_loop(
    runner: Runner,
    opts: RunOptions,
    ordered: queue.SimpleQueue,
    window: Tokens,
    encoder: Encoder,
    stop: threading.Event,
    summary: RunSummary,
    clock: StageClock,
) -> None:
    """Gather frames until ``opts.batch`` are pending (or the shape changes), submit them,
    keep up to ``runner.frames_in_flight`` batches in the runner, and hand every item on to
    the encoder in input order once its batch is back."""
    inflight: deque[_Unit] = deque()
    unit = _Unit()

    def submit() -> None:
        nonlocal unit
        if unit.frames:
            t = time.perf_counter()
            if len(unit.frames) == 1:  # batch 1: the frame itself, no copy
                batch = np.ascontiguousarray(unit.frames[0].model_input)[None]
            else:
                batch = np.stack([f.model_input for f in unit.frames])
            clock.add("copy", time.perf_counter() - t)
            t = time.perf_counter()
            unit.pending = runner.submit_frames(batch)
            clock.add("infer", time.perf_counter() - t)
        if unit.items:
            inflight.append(unit)
        unit = _Unit()
        # Complete the oldest units while more batches than the runner double-buffers are
        # in flight (marker-only units complete as soon as they are at the front).
        while inflight and (
            inflight[0].pending is None
            or sum(u.pending is not None for u in inflight) > runner.frames_in_flight
        ):
            complete(inflight.popleft())

    def complete(done: _Unit) -> None:
        if done.pending is not None:
            t = time.perf_counter()
            outputs = done.pending.result()
            clock.add("infer", time.perf_counter() - t)
            summary.model_frames += len(done.frames)
            for f, out in zip(done.frames, outputs, strict=True):
                f.output = out
        for item in done.items:
            encoder.handle(item)

    while True:
        stream = get(ordered, stop)
        if stream is None:
            break
        if isinstance(stream, BaseException):  # the submitter's unexpected error
            raise stream
        while True:
            item = stream.take(stop)
            if isinstance(item, Frame):
                if unit.frames and item.model_input.shape != unit.frames[0].model_input.shape:
                    submit()  # a batch holds frames of one shape
                unit.frames.append(item)
            unit.items.append(item)
            if isinstance(item, Frame) and len(unit.frames) >= opts.batch:
                submit()
            if isinstance(item, End | Failed):
                break
        window.release()
    submit()
    while inflight:
        complete(inflight.popleft())
    summary.model_seconds = clock.seconds["infer"]


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
