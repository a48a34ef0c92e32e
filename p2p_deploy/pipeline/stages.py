"""The work of the pipeline's worker threads: decoding jobs into items, encoding outputs.

One pool of ``workers`` threads (:class:`Workers`) does both. Decoding: a job -> Start /
Frame / End items, or Failed, into its own :class:`JobStream` (decode, convert to BGR8, fit
to the model: its square, or ``native``: its own size padded to the model's stride, see
:func:`make_fitter`). An image is one task; a video is a :class:`VideoDecoder` that decodes
its frames in order, a few per task. Encoding (:class:`Encoder`): a translated image is one
task (restore the size, compose, encode, atomic write); a video is a :class:`VideoWriter`
that owns its ``VideoSink`` and writes its frames in order, a few per task (written under a
temporary name, renamed at its End). Each job's outcome (done, or a one-line failure) is
recorded by its index, so the summary lists failures in input order however the threads
interleave.

No task ever waits for another task or for the batcher, which is what lets one pool serve
both sides at any size, one thread included, without deadlock: a video's decoder parks when
its stream is full and the batcher resumes it, a video's writer returns when its queue is
empty and the batcher's next item schedules it again. Only the batcher and the submitter
(threads of their own) block, each on a bound that the pool's tasks release.

OpenCV releases the GIL in ``imdecode``/``imencode``/``resize``/``VideoCapture.read``/
``VideoWriter.write`` and the file I/O, so the threads decode and encode in parallel. Every
blocking call waits in slices and gives up when the run's ``stop`` event is set.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
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
# Frames a video's decode or write task handles before it queues itself again behind the
# other tasks (first in, first out): images and other videos proceed between its steps.
STEP = 8


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


def put(q: queue.Queue | queue.SimpleQueue, item: Any, stop: threading.Event) -> None:
    """``q.put`` that gives up (raises :class:`Stopped`) when ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=_SLICE)
            return
        except queue.Full:
            continue


def get(q: queue.Queue | queue.SimpleQueue, stop: threading.Event) -> Any:
    """``q.get`` that gives up (raises :class:`Stopped`) when ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            return q.get(timeout=_SLICE)
        except queue.Empty:
            continue


class Tokens:
    """A counting semaphore held in a C queue of ``n`` tokens: ``acquire`` takes one (waiting
    at most ``timeout``), ``release`` puts one back. ``threading.Semaphore`` is Python around
    a condition variable, about ten times the cost per acquire and release; the bounds that
    every image passes twice (the jobs ahead of the batcher, the images waiting for an
    encoder) use this instead."""

    def __init__(self, n: int) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(n):
            self._q.put(None)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        try:
            self._q.get(blocking, timeout)
        except queue.Empty:
            return False
        return True

    def release(self) -> None:
        self._q.put(None)


def acquire(sem: threading.Semaphore | Tokens, stop: threading.Event) -> None:
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


# ------------------------------------------------------------------------------- the pool


class Closable:
    """Something a task holds open between its steps (a video being decoded or written);
    :meth:`Workers.abort` closes what is still open when a run stops."""

    def close(self) -> None:  # pragma: no cover - the protocol
        raise NotImplementedError


class Workers:
    """The run's one pool of ``workers`` threads, shared by decoding and encoding.

    Tasks never block on each other (see the module's docstring), so any number of threads,
    one included, runs every job to its end. The first unexpected error of any task is kept
    in :attr:`error` and sets ``stop``; the batcher re-raises it.

    Not a ``ThreadPoolExecutor``: a run queues two or more tasks per image and needs none of
    their results (:meth:`_guard` takes every error), and an executor's future per task (a
    condition variable made, entered, notified and kept until pruned) was a sixth of the
    Python every image costs, which holds the GIL: on a GPU that is what bounds the frames
    per second. Here a task is a tuple in a ``SimpleQueue`` (implemented in C) and the pool
    counts what is queued or running.
    """

    def __init__(self, n: int, stop: threading.Event) -> None:
        self.stop = stop
        self.error: BaseException | None = None
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when nothing is queued/running
        self._unfinished = 0
        self._open: set[Closable] = set()
        self._threads = [
            threading.Thread(target=self._serve, name=f"p2p-worker_{i}", daemon=True)
            for i in range(n)
        ]
        try:
            for t in self._threads:
                t.start()
        except BaseException:  # e.g. Ctrl-C in start(), which waits for the new thread
            for _ in self._threads:  # one end marker each: those already running end
                self._tasks.put(None)
            raise

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue ``fn(*args)`` (from any thread); nothing is queued once the run is stopping."""
        with self._lock:
            if self.stop.is_set():
                return
            self._unfinished += 1
        self._tasks.put((fn, args))

    def opened(self, thing: Closable) -> None:
        with self._lock:
            self._open.add(thing)

    def closed(self, thing: Closable) -> None:
        with self._lock:
            self._open.discard(thing)

    def finish(self) -> None:
        """Wait until no task is queued or running (tasks queued by tasks included: a task
        queues its successor before it ends); re-raise the first unexpected error of any of
        them. Then the threads end."""
        with self._lock:
            while self._unfinished and self.error is None:
                self._idle.wait(_SLICE)
        if self.error is not None:
            raise self.error
        self._end_threads()

    def abort(self) -> None:
        """Stop every task (``stop`` must be set first: running tasks see it and return,
        queued ones are dropped) and close what they held open (a half-written video is
        removed)."""
        while True:
            try:
                self._tasks.get_nowait()
            except queue.Empty:
                break
        self._end_threads()
        with self._lock:
            still_open, self._open = list(self._open), set()
        for thing in still_open:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - best effort while stopping; the cause is raised
                log.debug("closing %r while stopping", thing, exc_info=True)

    def _end_threads(self) -> None:
        """One end marker per thread; wait for them (after :meth:`finish` or :meth:`abort`)."""
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()

    def _serve(self) -> None:
        """A pool thread: run tasks until its end marker."""
        while (task := self._tasks.get()) is not None:
            fn, args = task
            try:
                self._guard(fn, *args)
            finally:
                with self._lock:
                    self._unfinished -= 1
                    if not self._unfinished:
                        self._idle.notify_all()

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        if self.stop.is_set():
            return  # queued before the stop: not started
        try:
            fn(*args)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the batcher, which re-raises
            with self._lock:  # two tasks failing at once: the first one's error is raised
                if self.error is None and not self.stop.is_set():
                    self.error = exc
                self.stop.set()
                self._idle.notify_all()


# ------------------------------------------------------------------------------- decoding


@dataclass(eq=False)
class JobStream:
    """One job's items, in order, from its decoding to the batcher.

    An image puts its three items and ends; a video's decoder parks when ``q`` holds
    ``RunOptions.video_queue`` items (a long video never holds more than that in memory) and
    :meth:`take` resumes it. ``ready`` is a Failed item made before any decoding (a link into
    the output folder, a clashing output name): nothing is decoded then.
    """

    index: int
    job: Job
    q: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # C: no lock per item
    ready: Failed | None = None
    parked: bool = False
    resume: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, stop: threading.Event) -> Any:
        """The next item (the batcher's side), resuming a parked decoder now that there is
        room. Raises :class:`Stopped` when the run stops while it waits."""
        item = get(self.q, stop)
        with self.lock:
            resume, self.parked = self.parked, False
        if resume and self.resume is not None:
            self.resume()
        return item

    def park_if_full(self, limit: int) -> bool:
        """The decoder's side: True (and parked) when ``q`` holds ``limit`` items. Under the
        lock that :meth:`take` checks after each item, so no wake-up is missed."""
        with self.lock:
            if self.q.qsize() >= limit:
                self.parked = True
                return True
            return False


def decode_image(stream: JobStream, fitter: Fitter, opts: RunOptions, clock: StageClock) -> None:
    """Task body: an image's Start, Frame and End into ``stream`` (or one Failed)."""
    job = stream.job
    t = time.perf_counter()
    try:
        img = read_image(job.src, opts.max_pixels)
    except DataError as exc:
        stream.q.put(Failed(job, str(exc)))
        return
    try:
        model_input, geo = fitter(img)
    except DataError as exc:
        stream.q.put(Failed(job, f"{job.src}: {exc}"))
        return
    clock.add("decode", time.perf_counter() - t)
    stream.q.put(Start(job))
    stream.q.put(Frame(job, 0, model_input, geo, img if opts.side_by_side else None))
    stream.q.put(End(job, 1))


class VideoDecoder(Closable):
    """A video's decoding, :data:`STEP` frames per task: opens the file (the one time the
    run opens it), puts Start, its Frames and End (or Failed) into ``stream``, parks while
    the stream is full, closes the file at its end and then calls ``on_end``."""

    def __init__(
        self,
        stream: JobStream,
        fitter: Fitter,
        opts: RunOptions,
        workers: Workers,
        clock: StageClock,
        on_total: Callable[[int], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.fitter = fitter
        self.opts = opts
        self.workers = workers
        self.clock = clock
        self.on_total = on_total
        self.on_end = on_end
        self.src: VideoSource | None = None
        self.frames: Any = None  # the source's frame iterator, resumed step after step
        self.n = 0  # frames put so far
        stream.resume = self.schedule

    def schedule(self) -> None:
        """Queue the next step on the pool."""
        self.workers.submit(self.step)

    def step(self) -> None:
        """Task body: decode up to :data:`STEP` frames, then queue the next step, park (the
        stream is full) or end."""
        job = self.stream.job
        if self.src is None:
            try:
                self.src = VideoSource(job.src)
            except DataError as exc:
                self._end(Failed(job, str(exc)))
                return
            self.workers.opened(self)
            self.frames = iter(self.src.frames())
            if self.on_total is not None:
                self.on_total(self.src.frame_count)
        for _ in range(STEP):
            if self.workers.stop.is_set():
                return  # the pool's abort closes the file
            if self.stream.park_if_full(self.opts.video_queue):
                return
            t = time.perf_counter()
            frame = next(self.frames, None)
            if frame is None:
                self._end(self._last_item())
                return
            try:
                model_input, geo = self.fitter(frame)
            except DataError as exc:  # a frame size the model cannot take: fail the video
                self._end(Failed(job, f"{job.src}: {exc}"))
                return
            self.clock.add("decode", time.perf_counter() - t)
            if self.n == 0:
                self.stream.q.put(Start(job, self.src.fps))
            source = frame if self.opts.side_by_side else None
            self.stream.q.put(Frame(job, self.n, model_input, geo, source))
            self.n += 1
        self.schedule()

    def close(self) -> None:
        if self.src is not None:
            self.src.close()

    def _last_item(self) -> End | Failed:
        """End, or Failed for a video that decoded no frame or fewer than it claims."""
        job, n = self.stream.job, self.n
        if n == 0:
            return Failed(job, f"{job.src}: video holds no decodable frames.")
        claimed = self.src.frame_count if self.src is not None else 0
        if claimed and n < claimed:
            # A truncated or corrupt file stops decoding early: fail it (its partial output is
            # removed) rather than count a third of a video as done. A shortfall within 1 frame
            # or 1% is let through with a warning: some containers only estimate the count
            # from duration x fps.
            if claimed - n > max(1, claimed // 100):
                why = f"decoded {n} of {claimed} frames (truncated or corrupt)."
                return Failed(job, f"{job.src}: {why}")
            log.warning("%s: decoded %d of the %d frames the container claims", job.src, n, claimed)
        return End(job, n)

    def _end(self, item: End | Failed) -> None:
        self.close()
        self.workers.closed(self)
        self.stream.q.put(item)
        if self.on_end is not None:
            self.on_end()


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
    """The output side: translated items in, files out, as tasks on the run's :class:`Workers`.

    :meth:`handle` is called by the batcher with every item in input order. Images become one
    task each (at most ``opts.encode_queue`` waiting, so memory stays bounded); a video's
    Start opens a :class:`VideoWriter` that writes its frames in order (at most
    ``opts.video_writers`` open at once: a folder of short videos would otherwise open every
    one of them, frames and all, while the encoders lag behind the GPU).
    """

    def __init__(
        self,
        opts: RunOptions,
        index_of: dict[Job, int],
        outcomes: Outcomes,
        workers: Workers,
        clock: StageClock,
        taken: set[Path],
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        """``taken``: every output path of the run (an odd-size video's MJPG/.avi fallback must
        not be one of them)."""
        self.opts = opts
        self.index_of = index_of
        self.outcomes = outcomes
        self.workers = workers
        self.stop = workers.stop
        self.clock = clock
        self.taken = taken
        self.on_frame = on_frame
        self._slots = Tokens(opts.encode_queue)
        # Released by each video's writer at its end; the writers holding one are earlier
        # videos, whose items (End included) are all queued already, so they finish without
        # the batcher and waiting here cannot deadlock.
        self.video_slots = threading.Semaphore(opts.video_writers)
        self._videos: dict[Job, VideoWriter] = {}
        # Called once, right before the first output is written (the output folder's marker).
        self.before_first_write: Callable[[], None] | None = None
        self._first_write = threading.Lock()

    def handle(self, item: Start | Frame | End | Failed) -> None:
        """Route one item (called from the batcher thread, in input order)."""
        if self.workers.error is not None:
            raise self.workers.error
        job = item.job
        # Images (most items) skip the lookup: hashing a Job hashes its two paths.
        video = self._videos.get(job) if job.kind == "video" else None
        if video is not None:  # frames, End or a late Failed of an open video
            video.put(item)
            if isinstance(item, End | Failed):
                del self._videos[job]
        elif isinstance(item, Failed):
            self.outcomes.fail(self.index_of[job], item.reason)
        elif isinstance(item, Start) and job.kind == "video":
            acquire(self.video_slots, self.stop)
            self._videos[job] = VideoWriter(self, self.index_of[job], job, item.fps or 25.0)
        elif isinstance(item, Frame):  # an image's one frame
            acquire(self._slots, self.stop)
            self.workers.submit(self._image_task, self.index_of[job], item)

    def before_writing(self) -> None:
        """Run ``before_first_write`` once, whichever task writes first."""
        if self.before_first_write is None:
            return
        with self._first_write:  # held while it runs: no output goes in before it is done
            if self.before_first_write is not None:
                first, self.before_first_write = self.before_first_write, None
                first()

    def frame_written(self) -> None:
        self.outcomes.frame_written()
        if self.on_frame:
            self.on_frame(1)

    def _image_task(self, index: int, item: Frame) -> None:
        try:
            if self.stop.is_set():
                return
            t = time.perf_counter()
            frame = compose(item, self.opts.keep_size, self.opts.side_by_side)
            try:
                self.before_writing()
                write_image(item.job.dst, frame)
            except DataError as exc:
                self.outcomes.fail(index, str(exc))
                return
            finally:
                self.clock.add("encode", time.perf_counter() - t)
            self.frame_written()
            self.outcomes.done(index)
        finally:
            self._slots.release()


class VideoWriter(Closable):
    """One video's output, written in frame order, :data:`STEP` frames per task.

    The batcher :meth:`put` s items (waiting while ``opts.video_queue`` are queued); a drain
    task is queued when items arrive and none is queued or running, and it returns when the
    queue is empty, so it never waits for the batcher. The sink opens with the first frame
    (its size decides the codec, see :meth:`_target`); at End the file is renamed into place,
    after a failure (or a stop: :meth:`close`) it is removed.
    """

    def __init__(self, encoder: Encoder, index: int, job: Job, fps: float) -> None:
        self.encoder = encoder
        self.opts = encoder.opts
        self.index = index
        self.job = job
        self.fps = fps
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._room = threading.Semaphore(self.opts.video_queue)
        self.sink: VideoSink | None = None
        self.failed: str | None = None  # after a write failure the rest of the video is dropped

    def put(self, item: Frame | End | Failed) -> None:
        """Queue one item (the batcher's side, in order)."""
        acquire(self._room, self.encoder.stop)
        with self._lock:
            self._items.append(item)
            start, self._scheduled = not self._scheduled, True
        if start:
            self.encoder.workers.submit(self.drain)

    def drain(self) -> None:
        """Task body: write queued items until the queue is empty (then return), the video
        ends, or :data:`STEP` frames are written (then queue itself again)."""
        for _ in range(STEP):
            if self.encoder.stop.is_set():
                return  # the pool's abort removes the half-written file
            with self._lock:
                if not self._items:
                    self._scheduled = False
                    return
                item = self._items.popleft()
            self._room.release()
            if self._take(item):
                return
        self.encoder.workers.submit(self.drain)

    def close(self) -> None:
        """Remove a half-written file (a stopped run)."""
        if self.sink is not None:
            sink, self.sink = self.sink, None
            sink.abort()

    def _take(self, item: Frame | End | Failed) -> bool:
        """Write one item; True once the video has ended (End or Failed)."""
        job = self.job
        if isinstance(item, Failed):  # e.g. decoding stopped early (truncated file)
            self.failed = self.failed or item.reason
            self._end()
            return True
        if isinstance(item, End):
            if self.failed is None and self.sink is None:
                self.failed = f"{job.src}: no frames were written."
            self._end()
            return True
        if self.failed is not None:
            return False
        t = time.perf_counter()
        try:
            frame = compose(item, self.opts.keep_size, self.opts.side_by_side)
            if self.sink is None:
                dst, codec = self._target(frame.shape[1], frame.shape[0])
                self.encoder.before_writing()
                self.sink = VideoSink(dst, codec, self.fps, frame.shape[1], frame.shape[0])
                self.encoder.workers.opened(self)
            self.sink.write(frame)
        except DataError as exc:
            self.failed = str(exc)
            return False
        finally:
            self.encoder.clock.add("encode", time.perf_counter() - t)
        self.encoder.frame_written()
        return False

    def _end(self) -> None:
        """Finish (rename into place) or remove the file; record the outcome; free the slot."""
        enc = self.encoder
        if self.failed is None and self.sink is not None:
            t = time.perf_counter()
            try:
                self.sink.finish()  # removes its temporary file itself on a DataError
            except DataError as exc:
                self.failed = str(exc)
            # Dropped only now: after an unexpected error in finish the sink stays open (and
            # listed), so the pool's abort removes its temporary file.
            self.sink = None
            enc.clock.add("encode", time.perf_counter() - t)
        self.close()
        enc.workers.closed(self)
        if self.failed is not None:
            enc.outcomes.fail(self.index, self.failed)
        else:
            enc.outcomes.done(self.index)
        enc.video_slots.release()

    def _target(self, width: int, height: int) -> tuple[Path, str]:
        """(output path, codec) of a video whose first output frame is ``width`` x ``height``.

        OpenCV's FFmpeg writer drops the last column/row of an odd size; with ``keep_size``
        (the output has the input's size) such a video is written with OpenCV's own MJPG
        writer to ``.avi`` instead, at its exact size. Model-size outputs are padded by the
        sink instead (see VideoSink).

        Raises:
            DataError: the ``.avi`` name is another output of this run.
        """
        job = self.job
        codec = self.opts.codec
        if (
            not self.opts.keep_size
            or not (width % 2 or height % 2)
            or keeps_odd_sizes(codec, job.dst.suffix)
        ):
            return job.dst, codec
        dst = odd_size_output(job.dst)
        if dst in self.encoder.taken:
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
