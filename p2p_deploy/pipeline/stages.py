"""The reader and writer threads' work. Both stop promptly when ``stop`` is set.

Reader: jobs -> Start / Frame / End / Failed items (decode, convert to BGR8, fit to S x S).
Writer: items -> files (restore size, side-by-side, atomic image writes, videos under a temp
name renamed on End), counting into the summary.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from p2p_deploy.errors import DataError
from p2p_deploy.media.files import Job
from p2p_deploy.media.images import read_image, write_image
from p2p_deploy.media.resize import fit, restore, source_view
from p2p_deploy.media.video import VideoSink, VideoSource, keeps_odd_sizes, odd_size_output
from p2p_deploy.pipeline.items import DONE, Crash, End, Failed, Frame, Start
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.summary import RunSummary

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Raised inside a worker when the run is being stopped."""


def put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """``q.put`` that gives up when ``stop`` is set (the consumer may be gone)."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def read_jobs(
    jobs: Iterable[Job | Failed],
    size: int,
    opts: RunOptions,
    out_q: queue.Queue,
    stop: threading.Event,
    on_total: Callable[[int], None] | None = None,
) -> None:
    """Reader thread body. ``jobs`` holds Jobs to read and ready-made Failed items, in order.
    ``on_total(n)``: called with each video's frame count when it is opened (0 if unknown)."""
    try:
        for job in jobs:
            if isinstance(job, Failed):
                put(out_q, job, stop)
            elif job.kind == "image":
                _read_image(job, size, opts, out_q, stop)
            else:
                _read_video(job, size, opts, out_q, stop, on_total)
        put(out_q, DONE, stop)
    except Stopped:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
        try:
            put(out_q, Crash(exc), stop)
        except Stopped:
            pass


def _read_image(
    job: Job, size: int, opts: RunOptions, out_q: queue.Queue, stop: threading.Event
) -> None:
    try:
        img = read_image(job.src, opts.max_pixels)
    except DataError as exc:
        put(out_q, Failed(job, str(exc)), stop)
        return
    model_input, geo = fit(img, size, opts.resize)
    put(out_q, Start(job), stop)
    put(out_q, Frame(job, 0, model_input, geo, img if opts.side_by_side else None), stop)
    put(out_q, End(job, 1), stop)


def _read_video(
    job: Job,
    size: int,
    opts: RunOptions,
    out_q: queue.Queue,
    stop: threading.Event,
    on_total: Callable[[int], None] | None = None,
) -> None:
    try:
        src = VideoSource(job.src)  # the one time this run opens the video
    except DataError as exc:
        put(out_q, Failed(job, str(exc)), stop)
        return
    if on_total is not None:
        on_total(src.frame_count)
    with src:
        started = False
        n = 0
        for frame in src.frames():
            if not started:
                put(out_q, Start(job, src.fps), stop)
                started = True
            model_input, geo = fit(frame, size, opts.resize)
            put(out_q, Frame(job, n, model_input, geo, frame if opts.side_by_side else None), stop)
            n += 1
        if not started:
            put(out_q, Failed(job, f"{job.src}: video holds no decodable frames."), stop)
            return
        if src.frame_count and n < src.frame_count:
            # A truncated or corrupt file stops decoding early: fail it (the writer removes its
            # partial output) rather than count a third of a video as done. A shortfall within
            # 1 frame or 1% is let through with a warning: some containers only estimate the
            # count from duration x fps.
            if src.frame_count - n > max(1, src.frame_count // 100):
                reason = (
                    f"{job.src}: decoded {n} of {src.frame_count} frames (truncated or corrupt)."
                )
                put(out_q, Failed(job, reason), stop)
                return
            log.warning(
                "%s: decoded %d of the %d frames the container claims", job.src, n, src.frame_count
            )
        put(out_q, End(job, n), stop)


def compose(item: Frame, keep_size: bool, side_by_side: bool) -> np.ndarray:
    """The (H, W', 3) uint8 BGR frame to save for one translated frame."""
    out = restore(item.output, item.geometry, keep_size)
    if not side_by_side:
        return out
    left = source_view(item.source, item.model_input, item.geometry, keep_size)
    return np.concatenate([left, out], axis=1)


class Writer:
    """Writer thread body: consumes batches (lists of items) until DONE."""

    def __init__(
        self,
        opts: RunOptions,
        summary: RunSummary,
        on_frame: Callable[[int], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        taken: set | None = None,
    ) -> None:
        """``taken``: every output path of the run (an odd-size video's MJPG/.avi fallback
        must not be one of them)."""
        self.opts = opts
        self.taken = taken or set()
        self.summary = summary
        self.on_frame = on_frame
        self.on_failure = on_failure
        self._sink: VideoSink | None = None
        self._fps: float | None = None
        self._dead: set[Job] = set()  # jobs that failed mid-way: drop their remaining frames
        self.error: BaseException | None = None
        # Called once, right before the first output is written (the output folder's marker).
        self.before_first_write: Callable[[], None] | None = None

    def fail(self, job: Job, reason: str) -> None:
        self.summary.failures.append({"path": str(job.src), "reason": reason})
        log.debug("failed: %s", reason)
        if self.on_failure:
            self.on_failure(reason)

    def run(self, in_q: queue.Queue, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    batch = in_q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if batch is DONE:
                    return
                for item in batch:
                    if stop.is_set():
                        return
                    self._handle(item)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self.error = exc
            stop.set()
        finally:
            self.abort_open()

    def abort_open(self) -> None:
        """Remove a half-written video (an interrupted run leaves only complete files)."""
        if self._sink is not None:
            self._sink.abort()
            self._sink = None

    def _handle(self, item: Any) -> None:
        if isinstance(item, Failed):
            if item.job in self._dead:  # its write already failed and was reported
                self._dead.discard(item.job)
                return
            # A video failing after some frames (truncated input): its sink is the open one.
            self.abort_open()
            self.fail(item.job, item.reason)
        elif isinstance(item, Start):
            self._fps = item.fps
        elif isinstance(item, Frame):
            if item.job in self._dead:
                return
            frame = compose(item, self.opts.keep_size, self.opts.side_by_side)
            try:
                self._write(item, frame)
            except DataError as exc:
                self._dead.add(item.job)
                self.abort_open()
                self.fail(item.job, str(exc))
                return
            self.summary.frames += 1
            if self.on_frame:
                self.on_frame(1)
        elif isinstance(item, End):
            if item.job in self._dead:
                self._dead.discard(item.job)
                return
            if item.job.kind == "video":
                if self._sink is None:  # no frame reached the writer
                    self.fail(item.job, f"{item.job.src}: no frames were written.")
                    return
                sink, self._sink = self._sink, None
                try:
                    sink.finish()
                except DataError as exc:
                    self.fail(item.job, str(exc))
                    return
            self.summary.done += 1

    def _write(self, item: Frame, frame: np.ndarray) -> None:
        if self.before_first_write is not None:
            first, self.before_first_write = self.before_first_write, None
            first()
        if item.job.kind == "image":
            write_image(item.job.dst, frame)
            return
        if self._sink is None:
            dst, codec = self._video_target(item.job, frame.shape[1], frame.shape[0])
            self._sink = VideoSink(dst, codec, self._fps or 25.0, frame.shape[1], frame.shape[0])
        self._sink.write(frame)

    def _video_target(self, job: Job, width: int, height: int) -> tuple[Any, str]:
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
