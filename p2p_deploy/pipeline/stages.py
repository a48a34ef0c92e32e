"""The work of the pipeline's worker threads: decoding jobs into items, encoding outputs.

Decoding (a pool of ``workers`` threads): a job -> Start / Frame / End items, or Failed, into
its own bounded :class:`JobStream` (decode, convert to BGR8, fit to the model: its square, or
``native``: its own size padded to the model's stride, see :func:`make_fitter`). An image
is one task; a video is one task that streams its frames (decoded in order by one thread).

Encoding (:class:`Encoder`, another pool of ``workers`` threads): a translated image is one
task (restore the size, compose, encode, atomic write); a video is one task that owns its
``VideoSink`` and writes its frames in order (written under a temporary name, renamed at its
End). Each job's outcome (done, or a one-line failure) is recorded by its index, so the
summary lists failures in input order however the threads interleave.

OpenCV releases the GIL in ``imdecode``/``imencode``/``resize``/``VideoCapture.read``/
``VideoWriter.write`` and the file I/O, so the threads decode and encode in parallel. Every
blocking call waits in slices and gives up when the run's ``stop`` event is set.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.errors import DataError
from p2p_deploy.media.files import Job
from p2p_deploy.media.images import read_image, write_image
from p2p_deploy.media.resize import NATIVE, Geometry, fit, fit_native, restore, source_view
from p2p_deploy.media.video import VideoSink, VideoSource, keeps_odd_sizes, odd_size_output
from p2p_deploy.models.spatial import format_size
from p2p_deploy.pipeline.items import End, Failed, Frame, Start
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)

_SLICE = 0.1  # seconds a blocking queue call waits before it looks at ``stop`` again
FUTURES_KEPT = 256  # the Encoder's task futures are pruned of finished ones past this many


class Stopped(Exception):
    """Raised inside a worker when the run is being stopped."""


# A decoded (H, W, 3) uint8 frame -> (the model input, how it was fitted); raises DataError
# (one sentence, without the file's name) for a frame the model cannot take.
Fitter = Callable[[np.ndarray], tuple[np.ndarray, Geometry]]


def make_fitter(runner: Runner, opts: RunOptions) -> Fitter:
    """How frames are fitted to ``runner`` (see ``RunOptions.resize``): to its S x S square,
    or ``native``: padded to multiples of its stride and at least its smallest size. A native
    frame beyond every size the runner takes (its largest, with tiling off) fails with one
    line when it is decoded, before it reaches the model."""
    if opts.resize != NATIVE:
        size = runner.image_size
        return lambda frame: fit(frame, size, opts.resize)
    sizes = runner.size_range

    def native(frame: np.ndarray) -> tuple[np.ndarray, Geometry]:
        model_input, geo = fit_native(frame, sizes.stride, sizes.min)
        padded = model_input.shape[:2]
        if not sizes.accepts(padded):
            shown = format_size((geo.height, geo.width))
            raise DataError(
                f"{shown} (run at {format_size(padded)}) is beyond the largest size the model "
                f"takes ({sizes.describe()}) and tiling is off (--max-tile off)."
            )
        return model_input, geo

    return native


def put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """``q.put`` that gives up (raises :class:`Stopped`) when ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=_SLICE)
            return
        except queue.Full:
            continue


def get(q: queue.Queue, stop: threading.Event) -> Any:
    """``q.get`` that gives up (raises :class:`Stopped`) when ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            return q.get(timeout=_SLICE)
        except queue.Empty:
            continue


def acquire(sem: threading.Semaphore, stop: threading.Event) -> None:
    """``sem.acquire`` that gives up (raises :class:`Stopped`) when ``stop`` is set."""
    while not sem.acquire(timeout=_SLICE):
        if stop.is_set():
            raise Stopped


class StageClock:
    """Busy seconds per stage, summed over the threads that do it (thread-safe).

    Stages: ``decode`` (read + decode + fit), ``copy`` (stacking frames into a batch and
    taking the outputs back), ``infer`` (the runner: upload, model, download), ``encode``
    (restore + compose + encode + write). Divided by the threads that share a stage and
    compared with the wall time, they say which stage bounds a run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {"decode": 0.0, "copy": 0.0, "infer": 0.0, "encode": 0.0}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds


# ------------------------------------------------------------------------------- decoding


@dataclass
class JobStream:
    """One job's items, in order, from its decode task to the batcher.

    ``q`` is bounded for a video (``RunOptions.video_queue`` frames plus its markers), so a
    long video never holds more than that in memory; an image puts its three items and ends.
    ``ready`` is a Failed item made before any decoding (a link into the output folder, a
    clashing output name): nothing is decoded then.
    """

    index: int
    job: Job
    q: queue.Queue = field(default_factory=queue.Queue)
    ready: Failed | None = None


def decode_job(
    stream: JobStream,
    fitter: Fitter,
    opts: RunOptions,
    stop: threading.Event,
    clock: StageClock,
    on_total: Callable[[int], None] | None = None,
) -> None:
    """Decode task body: fill ``stream`` with the job's items (ends with End or Failed).
    Unexpected errors go into the stream as the exception itself (the batcher re-raises)."""
    try:
        if stream.job.kind == "image":
            _decode_image(stream, fitter, opts, stop, clock)
        else:
            _decode_video(stream, fitter, opts, stop, clock, on_total)
    except Stopped:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the batcher, which re-raises
        try:
            put(stream.q, exc, stop)
        except Stopped:
            pass


def _decode_image(
    stream: JobStream, fitter: Fitter, opts: RunOptions, stop: threading.Event, clock: StageClock
) -> None:
    job = stream.job
    t = time.perf_counter()
    try:
        img = read_image(job.src, opts.max_pixels)
    except DataError as exc:
        put(stream.q, Failed(job, str(exc)), stop)
        return
    try:
        model_input, geo = fitter(img)
    except DataError as exc:
        put(stream.q, Failed(job, f"{job.src}: {exc}"), stop)
        return
    clock.add("decode", time.perf_counter() - t)
    put(stream.q, Start(job), stop)
    put(stream.q, Frame(job, 0, model_input, geo, img if opts.side_by_side else None), stop)
    put(stream.q, End(job, 1), stop)


def _decode_video(
    stream: JobStream,
    fitter: Fitter,
    opts: RunOptions,
    stop: threading.Event,
    clock: StageClock,
    on_total: Callable[[int], None] | None,
) -> None:
    job = stream.job
    try:
        src = VideoSource(job.src)  # the one time this run opens the video
    except DataError as exc:
        put(stream.q, Failed(job, str(exc)), stop)
        return
    if on_total is not None:
        on_total(src.frame_count)
    with src:
        started = False
        n = 0
        frames = iter(src.frames())
        while True:
            t = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            try:
                model_input, geo = fitter(frame)
            except DataError as exc:  # a frame size the model cannot take: fail the video
                put(stream.q, Failed(job, f"{job.src}: {exc}"), stop)
                return
            clock.add("decode", time.perf_counter() - t)
            if not started:
                put(stream.q, Start(job, src.fps), stop)
                started = True
            put(stream.q, Frame(job, n, model_input, geo, frame if opts.side_by_side else None),
                stop)  # fmt: skip
            n += 1
        if not started:
            put(stream.q, Failed(job, f"{job.src}: video holds no decodable frames."), stop)
            return
        if src.frame_count and n < src.frame_count:
            # A truncated or corrupt file stops decoding early: fail it (its partial output is
            # removed) rather than count a third of a video as done. A shortfall within 1 frame
            # or 1% is let through with a warning: some containers only estimate the count
            # from duration x fps.
            if src.frame_count - n > max(1, src.frame_count // 100):
                reason = (
                    f"{job.src}: decoded {n} of {src.frame_count} frames (truncated or corrupt)."
                )
                put(stream.q, Failed(job, reason), stop)
                return
            log.warning(
                "%s: decoded %d of the %d frames the container claims", job.src, n, src.frame_count
            )
        put(stream.q, End(job, n), stop)


# ------------------------------------------------------------------------------- encoding


def compose(item: Frame, keep_size: bool, side_by_side: bool) -> np.ndarray:
    """The (H, W', 3) uint8 BGR frame to save for one translated frame."""
    out = restore(item.output, item.geometry, keep_size)
    if not side_by_side:
        return out
    left = source_view(item.source, item.model_input, item.geometry, keep_size)
    return np.concatenate([left, out], axis=1)


class Outcomes:
    """Each job's outcome by index: ``None`` (pending), ``True`` (done) or a failure reason.
    Thread-safe; ``frames`` counts frames written."""

    def __init__(self, n: int, on_failure: Callable[[str], None] | None) -> None:
        self._lock = threading.Lock()
        self.results: list[bool | str | None] = [None] * n
        self.frames = 0
        self.on_failure = on_failure

    def done(self, index: int) -> None:
        with self._lock:
            self.results[index] = True

    def fail(self, index: int, reason: str) -> None:
        with self._lock:
            self.results[index] = reason
        log.debug("failed: %s", reason)
        if self.on_failure:
            self.on_failure(reason)

    def frame_written(self) -> None:
        with self._lock:
            self.frames += 1


class Encoder:
    """The output side: translated items in, files out, on a pool of ``opts.workers`` threads.

    :meth:`handle` is called by the batcher with every item in input order. Images become one
    task each (at most ``opts.encode_queue`` waiting, so memory stays bounded); a video's
    Start opens a task that owns its sink and consumes its own bounded queue until End (at
    most ``opts.video_writers`` such tasks open or waiting for a thread: a folder of short
    videos, each shorter than its queue, would otherwise queue every one of them, frames
    and all, while the encoders lag behind the GPU).
    :meth:`finish` waits for every task; :meth:`abort` (on Ctrl-C or an error) stops them,
    and a half-written video is removed.
    """

    def __init__(
        self,
        opts: RunOptions,
        index_of: dict[Job, int],
        outcomes: Outcomes,
        stop: threading.Event,
        clock: StageClock,
        taken: set[Path],
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        """``taken``: every output path of the run (an odd-size video's MJPG/.avi fallback must
        not be one of them)."""
        self.opts = opts
        self.index_of = index_of
        self.outcomes = outcomes
        self.stop = stop
        self.clock = clock
        self.taken = taken
        self.on_frame = on_frame
        self.error: BaseException | None = None
        self._pool = ThreadPoolExecutor(opts.workers, thread_name_prefix="p2p-encode")
        self._slots = threading.Semaphore(opts.encode_queue)
        # Released by each video task when it ends; the tasks holding one are earlier videos,
        # whose items (End included) are all queued already, so they finish without the
        # batcher and waiting here cannot deadlock.
        self._video_slots = threading.Semaphore(opts.video_writers)
        self._videos: dict[Job, queue.Queue] = {}
        self._futures: list[Any] = []
        # Called once, right before the first output is written (the output folder's marker).
        self.before_first_write: Callable[[], None] | None = None
        self._first_write = threading.Lock()
        self._prune_at = FUTURES_KEPT

    # -- the batcher's side ---------------------------------------------------------------

    def handle(self, item: Start | Frame | End | Failed) -> None:
        """Route one item (called from the batcher thread, in input order)."""
        if self.error is not None:
            raise self.error
        job = item.job
        video = self._videos.get(job)
        if video is not None:  # frames, End or a late Failed of an open video
            put(video, item, self.stop)
            if isinstance(item, End | Failed):
                del self._videos[job]
        elif isinstance(item, Failed):
            self.outcomes.fail(self.index_of[job], item.reason)
        elif isinstance(item, Start) and job.kind == "video":
            acquire(self._video_slots, self.stop)
            q: queue.Queue = queue.Queue(maxsize=self.opts.video_queue)
            self._videos[job] = q
            self._submit(self._video_task, self.index_of[job], job, item.fps or 25.0, q)
        elif isinstance(item, Frame):  # an image's one frame
            acquire(self._slots, self.stop)
            self._submit(self._image_task, self.index_of[job], item)

    def finish(self) -> None:
        """Wait for every task; re-raise the first unexpected error of any of them."""
        for f in self._futures:
            while not f.done():
                if self.error is not None:
                    break
                try:
                    f.result(timeout=_SLICE)
                except FutureTimeout:
                    continue
        self._pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop every task (``stop`` must be set first); open videos remove their temp files."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        # Only unfinished tasks are kept: a done one holds nothing (_guard takes every error)
        # and, at ~1.6 kB each, a million images' futures would hold over a gigabyte. Pruned
        # when the list doubles past the tasks that can be unfinished at once (amortised O(1)).
        if len(self._futures) >= self._prune_at:
            self._futures = [f for f in self._futures if not f.done()]
            self._prune_at = max(FUTURES_KEPT, 2 * len(self._futures))
        self._futures.append(self._pool.submit(self._guard, fn, *args))

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the batcher, which re-raises
            if self.error is None:
                self.error = exc
            self.stop.set()

    def _before_writing(self) -> None:
        """Run ``before_first_write`` once, whichever task writes first."""
        if self.before_first_write is None:
            return
        with self._first_write:  # held while it runs: no output goes in before it is done
            if self.before_first_write is not None:
                first, self.before_first_write = self.before_first_write, None
                first()

    # -- tasks ----------------------------------------------------------------------------

    def _image_task(self, index: int, item: Frame) -> None:
        try:
            if self.stop.is_set():
                return
            t = time.perf_counter()
            frame = compose(item, self.opts.keep_size, self.opts.side_by_side)
            try:
                self._before_writing()
                write_image(item.job.dst, frame)
            except DataError as exc:
                self.outcomes.fail(index, str(exc))
                return
            finally:
                self.clock.add("encode", time.perf_counter() - t)
            self.outcomes.frame_written()
            self.outcomes.done(index)
            if self.on_frame:
                self.on_frame(1)
        finally:
            self._slots.release()

    def _video_task(self, index: int, job: Job, fps: float, q: queue.Queue) -> None:
        try:
            self._write_video(index, job, fps, q)
        finally:
            self._video_slots.release()

    def _write_video(self, index: int, job: Job, fps: float, q: queue.Queue) -> None:
        sink: VideoSink | None = None
        failed: str | None = None  # after a write failure the rest of the video is dropped
        try:
            while True:
                item = get(q, self.stop)
                if isinstance(item, Failed):  # e.g. decoding stopped early (truncated file)
                    if failed is None:
                        failed = item.reason
                    break
                if isinstance(item, End):
                    if failed is None and sink is None:
                        failed = f"{job.src}: no frames were written."
                    break
                if failed is not None:
                    continue
                t = time.perf_counter()
                try:
                    frame = compose(item, self.opts.keep_size, self.opts.side_by_side)
                    if sink is None:
                        dst, codec = self._video_target(job, frame.shape[1], frame.shape[0])
                        self._before_writing()
                        sink = VideoSink(dst, codec, fps, frame.shape[1], frame.shape[0])
                    sink.write(frame)
                except DataError as exc:
                    failed = str(exc)
                    continue
                finally:
                    self.clock.add("encode", time.perf_counter() - t)
                self.outcomes.frame_written()
                if self.on_frame:
                    self.on_frame(1)
            if failed is None and sink is not None:
                t = time.perf_counter()
                try:
                    sink.finish()
                except DataError as exc:
                    failed = str(exc)
                self.clock.add("encode", time.perf_counter() - t)
                sink = None
        finally:
            if sink is not None:  # failed, stopped or crashed: no half-written video stays
                sink.abort()
        if failed is not None:
            self.outcomes.fail(index, failed)
        else:
            self.outcomes.done(index)

    def _video_target(self, job: Job, width: int, height: int) -> tuple[Path, str]:
        """(output path, codec) of a video whose first output frame is ``width`` x ``height``.

        OpenCV's FFmpeg writer drops the last column/row of an odd size; with ``keep_size``
        (the output has the input's size) such a video is written with OpenCV's own MJPG
        writer to ``.avi`` instead, at its exact size. Model-size outputs are padded by the
        sink instead (see VideoSink).

        Raises:
            DataError: the ``.avi`` name is another output of this run.
        """
        codec = self.opts.codec
        if (
            not self.opts.keep_size
            or not (width % 2 or height % 2)
            or keeps_odd_sizes(codec, job.dst.suffix)
        ):
            return job.dst, codec
        dst = odd_size_output(job.dst)
        if dst in self.taken:
            raise DataError(
                f"{job.src}: {width}x{height} has an odd side, which {codec} cannot store "
                f"through OpenCV, and its MJPG fallback {dst.name} is another output of this run "
                "(rename one of the inputs, or use --codec MJPG)."
            )
        log.warning(
            "%s: %dx%d has an odd side, which %s cannot store through OpenCV (it would drop a "
            "column/row); writing it as MJPG to %s at %dx%d.",
            job.src, width, height, codec, dst.name, width, height,
        )  # fmt: skip
        return dst, "MJPG"
