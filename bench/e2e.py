"""End-to-end: the run pipeline's own stage functions timed over a folder of images or a video.

``p2p run`` has three stages, one per thread (:mod:`p2p_deploy.pipeline`):

* ``read``: :func:`p2p_deploy.pipeline.stages.read_jobs` (decode, convert to BGR8, fit S x S);
* ``infer``: :func:`p2p_deploy.pipeline.run.infer_batches`, the pipeline's own batcher
  (batches span files; ``runner.infer_frames``, uint8 frames in and out: a GPU runner converts
  to and from [-1, 1] on the device, as in ``p2p run``);
* ``write``: :class:`p2p_deploy.pipeline.stages.Writer` (restore the size, compose, encode,
  atomic writes).

:func:`run_e2e` calls exactly those functions, one stage after the other on one thread, so each
stage's time is its own and they add up to the wall time (the decoded input is held in memory
between stages: ``max_frames``, default :data:`DEFAULT_MAX_FRAMES`, caps it). Outputs go to a
temporary folder that is deleted afterwards: encoding is timed for real, nothing is left
behind. The threaded pipeline
itself (stages overlapping) runs in :func:`run_pipeline_fps` for the fps a user actually gets;
the report shows both.
"""

from __future__ import annotations

import itertools
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.errors import DataError
from p2p_deploy.imaging import bgr8_to_tensor
from p2p_deploy.media import files as files_mod
from p2p_deploy.media.files import IMAGE_EXTS
from p2p_deploy.media.images import read_image
from p2p_deploy.media.resize import fit
from p2p_deploy.pipeline.items import DONE, Crash, End, Frame
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.run import infer_batches, prepare
from p2p_deploy.pipeline.stages import Writer, read_jobs
from p2p_deploy.pipeline.summary import RunSummary
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("read", "infer", "write")
# The stages run one after the other, so the decoded input is held in memory between them:
# without an explicit max_frames, at most this many frames are timed (~0.4 GB at 256 px).
DEFAULT_MAX_FRAMES = 1000


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; DataError when there are none."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder.")
    files = files_mod.list_images(folder)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTS))}) in this folder.")
    return files


def readable_images(paths: Iterable[Path], unreadable: list[str]) -> Iterator[np.ndarray]:
    """Decode ``paths`` in order; an image that cannot be read is skipped (its one-line reason
    logged and appended to ``unreadable``), as ``p2p run`` does, instead of ending the run."""
    for p in paths:
        try:
            yield read_image(p)
        except DataError as exc:
            log.warning("skipped: %s", exc)
            unreadable.append(str(exc))


def load_folder_inputs(
    folder: Path, image_size: int, count: int, mode: str = "stretch"
) -> np.ndarray:
    """Up to ``count`` readable images of ``folder`` as model inputs: (n, 3, S, S) float32 in
    [-1, 1]. DataError when none of them can be read."""
    unreadable: list[str] = []
    images = itertools.islice(readable_images(list_images(folder), unreadable), count)
    frames = [fit(img, image_size, mode)[0] for img in images]
    if not frames:
        raise DataError(f"{folder}: no readable image ({unreadable[0]})")
    return bgr8_to_tensor(frames)


class _CappedQueue(queue.Queue):
    """An unbounded queue that sets ``stop`` once it holds ``cap`` frames: the reader's next
    ``put`` then raises ``Stopped`` and ``read_jobs`` returns (its frame cap, for bench)."""

    def __init__(self, cap: int | None, stop: threading.Event) -> None:
        super().__init__()
        self.cap, self.stop, self.frames = cap, stop, 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if isinstance(item, Frame):
            self.frames += 1
            if self.cap is not None and self.frames >= self.cap:
                self.stop.set()


def _read(src: Path, size: int, opts: RunOptions, out_dir: Path, cap: int | None) -> list:
    """The read stage: ``read_jobs`` over ``src``'s jobs; the items it produced, in order,
    closed with DONE (a job cut by ``cap`` gets its End, so the writer finishes its file)."""
    stop = threading.Event()
    q = _CappedQueue(cap, stop)
    read_jobs(prepare(src, out_dir, opts).work, size, opts, q, stop)
    items = list(q.queue)
    for item in items:
        if isinstance(item, Crash):
            raise item.error
    if items and items[-1] is not DONE:  # stopped at the cap
        last = items[-1]
        if isinstance(last, Frame):
            items.append(End(last.job, last.index + 1))
        items.append(DONE)
    return items or [DONE]


def _write(batches: list[list], opts: RunOptions, summary: RunSummary) -> None:
    """The write stage: the pipeline's ``Writer`` over the batches, on this thread."""
    q: queue.Queue = queue.Queue()
    for b in batches:
        q.put(b)
    q.put(DONE)
    writer = Writer(opts, summary)
    writer.run(q, threading.Event())
    if writer.error is not None:
        raise writer.error


def run_e2e(
    runner: Runner,
    *,
    folder: Path | None = None,
    video: Path | None = None,
    batch: int = 1,
    resize: str = "stretch",
    keep_size: bool = True,
    codec: str = "mp4v",
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Run the pipeline's stages once over ``folder`` (images) or ``video`` with an *entered*
    runner, one stage after the other.

    Returns the JSON-ready ``e2e`` section: source, frames, batch, wall seconds, fps, and per
    stage (``read``, ``infer``, ``write``) the total seconds, ms per frame and share of the wall.
    At most ``max_frames`` frames (default :data:`DEFAULT_MAX_FRAMES`) are read.

    Raises:
        DataError: no images in the folder, no frame could be translated (the first reasons
            named). Unreadable images of a folder are skipped and counted (``unreadable``).
    """
    if (folder is None) == (video is None):
        raise ValueError("give exactly one of folder or video")
    src = Path(folder if folder is not None else video)
    if folder is not None:
        list_images(src)  # "no images" in one sentence before anything is timed
    if max_frames is None:
        max_frames = DEFAULT_MAX_FRAMES
    opts = RunOptions(batch=batch, resize=resize, keep_size=keep_size, codec=codec)
    seconds = dict.fromkeys(STAGES, 0.0)
    summary = RunSummary(runner=runner.describe())
    with tempfile.TemporaryDirectory(prefix="p2p-bench-e2e-") as tmp:
        t0 = time.perf_counter()
        items = _read(src, runner.image_size, opts, Path(tmp) / "out", max_frames)
        t1 = time.perf_counter()
        batches = list(infer_batches(runner, items, batch))
        t2 = time.perf_counter()
        _write(batches, opts, summary)
        t3 = time.perf_counter()
    seconds.update(read=t1 - t0, infer=t2 - t1, write=t3 - t2)
    wall = t3 - t0
    n = summary.frames
    if n == 0:
        reasons = "; ".join(f["reason"] for f in summary.failures[:3])
        raise DataError(f"{src}: no frames could be translated ({reasons or 'no inputs'}).")
    return {
        "source": str(src),
        "kind": "folder" if folder is not None else "video",
        "runner": runner.describe(),
        "backend": runner.backend,
        "precision": runner.precision,
        "device": runner.device,
        "batch": batch,
        "frames": n,
        "unreadable": summary.failed,  # inputs skipped (reasons in the log)
        "wall_s": round(wall, 4),
        "fps": round(n / wall, 3),
        "stages": [
            {
                "stage": s,
                "total_s": round(seconds[s], 4),
                "ms_per_frame": round(1e3 * seconds[s] / n, 4),
                "share_pct": round(100 * seconds[s] / wall, 1) if wall > 0 else None,
            }
            for s in STAGES
        ],
        "method": (
            "the run pipeline's read, infer and write stage functions, one after the other on "
            "one thread (stage times add up to the wall time)"
        ),
    }


def run_pipeline_fps(runner: Runner, src: Path, batch: int = 1) -> dict[str, Any]:
    """Run the real ``p2p run`` pipeline (:func:`p2p_deploy.pipeline.run.run_pipeline`) over
    ``src`` into a temporary folder with an *entered* runner; returns its fps and model time.

    Raises:
        DataError: nothing could be translated.
    """
    from p2p_deploy.pipeline.options import RunOptions
    from p2p_deploy.pipeline.run import prepare, run_pipeline

    opts = RunOptions(batch=batch)
    with tempfile.TemporaryDirectory(prefix="p2p-bench-run-") as tmp:
        summary = run_pipeline(prepare(src, Path(tmp) / "out", opts), runner, opts)
    if summary.frames == 0:
        reasons = "; ".join(f.get("reason", "") for f in summary.failures[:3])
        raise DataError(f"{src}: the run pipeline translated no frames ({reasons or 'no inputs'}).")
    return {
        "frames": summary.frames,
        "wall_s": round(summary.seconds, 4),
        "fps": round(summary.fps, 3),
        "model_ms_per_frame": round(summary.model_ms_per_frame, 4),
        "failed": summary.failed,
        "method": "threaded pipeline: reader, runner and writer overlap",
    }
