"""End to end: ``p2p run``'s own pipeline timed over a folder of images or a video.

:func:`run_e2e` runs :func:`p2p_deploy.pipeline.run.run_pipeline` (what ``p2p run`` runs: one
pool of threads decoding and encoding, the batcher, the runner double-buffered) three times over
the same input into temporary folders (encoding is timed for real, nothing is left behind):

* with the benchmarked runner at ``workers`` threads: the fps a user gets, and where the time
  went (busy seconds per stage: decode, copy, infer, encode);
* the **I/O ceiling**: the same input through the same pipeline with an instant model (the
  frames come back as they went in), at 1 worker and at ``workers``: decode + fit + restore +
  encode alone, the most any model can reach here (the median of :data:`CEILING_ROUNDS` runs
  per worker count, taken in turns).

The run is bounded by the slower of the model (the runner's stream throughput, from the
harness's row at the same batch) and the I/O ceiling; the section says which stage bounds it.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
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
from p2p_deploy.media.video import VideoSink, VideoSource
from p2p_deploy.models.spatial import SizeRange
from p2p_deploy.pipeline.options import RunOptions, usable_cores
from p2p_deploy.pipeline.run import prepare, run_pipeline
from p2p_deploy.runners.base import Pending, Runner
from p2p_deploy.runners.tiling import TilingRunner

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("decode", "copy", "infer", "encode")
CEILING_ROUNDS = 3  # runs per worker count of the I/O ceiling (the median is reported)


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
    folder: Path,
    image_size: int,
    count: int,
    mode: str = "stretch",
    size: tuple[int, int] | None = None,
    stride: int = 1,
) -> np.ndarray:
    """Up to ``count`` readable images of ``folder`` as model inputs: (n, 3, S, S) float32 in
    [-1, 1], or with ``size`` (n, 3, H, W): reflect-padded to it as ``p2p run --resize
    native`` pads (``stride``: the model's) when that gives ``size``, else scaled to cover it
    and centre-cropped. DataError when none of them can be read."""
    from p2p_deploy.export.calibration import to_size

    unreadable: list[str] = []
    images = itertools.islice(readable_images(list_images(folder), unreadable), count)
    if size is None:
        frames = [fit(img, image_size, mode)[0] for img in images]
    else:
        frames = [to_size(img, size, stride) for img in images]
    if not frames:
        raise DataError(f"{folder}: no readable image ({unreadable[0]})")
    return bgr8_to_tensor(frames)


class InstantRunner(Runner):
    """The I/O ceiling's model: frames come back as they went in, at once (no copy, no
    conversion), so the pipeline's time is decode, fit, restore and encode alone. It takes the
    sizes ``sizes`` says (the benchmarked runner's; None: its S x S)."""

    backend = "instant"

    def __init__(self, image_size: int, sizes: SizeRange | None = None) -> None:
        super().__init__()
        self.image_size = image_size
        self.sizes = sizes
        self.precision = "none"
        self.is_active = True

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        return batch

    def _submit_frames_chunk(self, frames: np.ndarray) -> Pending:
        return Pending(lambda: frames)


def _capped_input(src: Path, kind: str, max_frames: int | None, tmp: Path) -> Path:
    """``src`` itself, or its first ``max_frames`` frames: links to the first images in a
    temporary folder, or the first frames of the video re-written (MJPG, before any timing)."""
    if max_frames is None:
        return src
    if kind == "folder":
        capped = tmp / "input"
        capped.mkdir()
        for p in list_images(src)[:max_frames]:
            (capped / p.name).symlink_to(p.resolve())
        return capped
    capped = tmp / "input.avi"
    with VideoSource(src) as v:
        sink = None
        for frame in itertools.islice(v.frames(), max_frames):
            if sink is None:
                sink = VideoSink(capped, "MJPG", v.fps or 25.0, frame.shape[1], frame.shape[0])
            sink.write(frame)
        if sink is None:
            raise DataError(f"{src}: video holds no decodable frames.")
        sink.finish()
    return capped


def _pipeline(runner: Runner, src: Path, out: Path, opts: RunOptions) -> dict[str, Any]:
    """One ``run_pipeline`` over ``src``; its figures as a JSON-ready dict."""
    summary = run_pipeline(prepare(src, out, opts), runner, opts)
    if summary.frames == 0:
        reasons = "; ".join(f.get("reason", "") for f in summary.failures[:3])
        raise DataError(f"{src}: the run pipeline translated no frames ({reasons or 'no inputs'}).")
    return {
        "workers": opts.workers,
        "frames": summary.frames,
        "wall_s": round(summary.seconds, 4),
        "fps": round(summary.fps, 3),
        "failed": summary.failed,
        "stage_seconds": summary.stage_seconds,
        "bound_by": summary.bound_by(),
    }


def _io_ceiling(
    instant: Runner, data: Path, tmp: Path, base: dict[str, Any], counts: list[int]
) -> dict[str, dict[str, Any]]:
    """The I/O ceiling at each worker count of ``counts``: :data:`CEILING_ROUNDS` runs each,
    taken in turns (1, N, 1, N, ...) so that a slow spell of the disk or a neighbour hits
    both counts alike; per count the median run's fps and wall time, and every run's fps.
    (One run each swung the ratio between 1 and N workers by +-20% on a 2-core VM.)"""
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in counts}
    for r in range(CEILING_ROUNDS):
        for w in counts:
            opts = RunOptions(**base, workers=w)
            runs[w].append(_pipeline(instant, data, tmp / f"io{w}-{r}", opts))
    out = {}
    for w, done in runs.items():
        mid = sorted(done, key=lambda c: c["fps"])[len(done) // 2]
        out[str(w)] = {
            "fps": mid["fps"],
            "wall_s": mid["wall_s"],
            "fps_runs": [c["fps"] for c in done],
        }
    return out


def run_e2e(
    runner: Runner,
    *,
    folder: Path | None = None,
    video: Path | None = None,
    batch: int = 1,
    workers: int | None = None,
    resize: str = "stretch",
    keep_size: bool = True,
    codec: str = "mp4v",
    max_frames: int | None = None,
) -> dict[str, Any]:
    """``p2p run``'s pipeline over ``folder`` (images) or ``video`` with an *entered* runner,
    then the I/O ceiling (see the module docstring).

    Returns the JSON-ready ``e2e`` section: source, kind, runner, batch, workers, the run's
    frames / wall / fps / busy seconds per stage / bounding stage, and ``io_ceiling`` with the
    fps at 1 worker and at ``workers``. At most ``max_frames`` frames are used (None: all).

    Raises:
        DataError: no images in the folder, nothing could be translated (reasons named).
    """
    if (folder is None) == (video is None):
        raise ValueError("give exactly one of folder or video")
    kind = "folder" if folder is not None else "video"
    src = Path(folder if folder is not None else video)
    if folder is not None:
        list_images(src)  # "no images" in one sentence before anything is timed
    workers = workers or usable_cores()
    base = {"batch": batch, "resize": resize, "keep_size": keep_size, "codec": codec}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        data = _capped_input(src, kind, max_frames, tmp)
        run = _pipeline(runner, data, tmp / "run", RunOptions(**base, workers=workers))
        inner = runner.inner if isinstance(runner, TilingRunner) else runner
        instant = InstantRunner(runner.image_size, inner.size_range)
        ceiling = _io_ceiling(instant, data, tmp, base, sorted({1, workers}))
    return {
        "source": str(src),
        "kind": kind,
        "runner": runner.describe(),
        "backend": runner.backend,
        "precision": runner.precision,
        "device": runner.device,
        "batch": batch,
        "workers": workers,
        "frames": run["frames"],
        "unreadable": run["failed"],  # inputs that failed (reasons in the log)
        "wall_s": run["wall_s"],
        "fps": run["fps"],
        "stage_seconds": run["stage_seconds"],
        "bound_by": run["bound_by"],
        "io_ceiling": ceiling,
        "method": (
            "`p2p run`'s pipeline (one pool of worker threads decoding and encoding, the runner "
            "double-buffered "
            "where it can be); the I/O ceiling is the same pipeline with an instant model, "
            f"the median of {CEILING_ROUNDS} runs per worker count, taken in turns"
        ),
    }
