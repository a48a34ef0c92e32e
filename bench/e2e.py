"""End-to-end: the whole run pipeline (decode, preprocess, infer, postprocess, encode) timed
stage by stage over a folder of images or a video.

The stages call the same functions ``p2p run`` uses (:mod:`p2p_deploy.media` for reading,
fitting and writing, :mod:`p2p_deploy.imaging` for the tensor conversion, the runner for
inference), one after the other on one thread, so each stage's time is its own and they add
up to the wall time. Outputs are written to a temporary folder that is deleted afterwards:
encoding is timed for real, nothing is left behind.

The threaded ``p2p run`` pipeline (reader, runner and writer overlapping) does not expose
per-stage times, so :func:`run_pipeline_fps` runs it as well for the fps a user of ``p2p run``
actually gets; the report shows both.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.errors import DataError
from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8
from p2p_deploy.media import files as files_mod
from p2p_deploy.media.files import IMAGE_EXTS
from p2p_deploy.media.images import read_image, write_image
from p2p_deploy.media.resize import fit, restore
from p2p_deploy.media.video import VideoSink, VideoSource
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("decode", "preprocess", "infer", "postprocess", "encode")


@dataclass
class StageClock:
    """Accumulated seconds per stage."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - t0
        return now


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


def _batches(
    frames: Iterator[np.ndarray], batch: int, clock: StageClock
) -> Iterator[list[np.ndarray]]:
    """Group decoded frames into lists of ``batch``; time spent decoding goes to ``decode``."""
    buf: list[np.ndarray] = []
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        clock.add("decode", t0)
        if frame is None:
            break
        buf.append(frame)
        if len(buf) == batch:
            yield buf
            buf = []
    if buf:
        yield buf


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
    """Run the pipeline once over ``folder`` (images) or ``video`` with an *entered* runner.

    Returns the JSON-ready ``e2e`` section: source, frames, batch, wall seconds, fps, and per
    stage the total seconds, ms per frame and share of the wall time.

    Raises:
        DataError: no images in the folder, no readable frame, unreadable video, codec cannot
            write. Unreadable images of a folder are skipped and counted (``unreadable``).
    """
    if (folder is None) == (video is None):
        raise ValueError("give exactly one of folder or video")
    clock = StageClock()
    size = runner.image_size
    n = 0
    unreadable: list[str] = []
    with tempfile.TemporaryDirectory(prefix="p2p-bench-e2e-") as tmp:
        out_dir = Path(tmp)
        sink: VideoSink | None = None
        source: VideoSource | None = None
        if folder is not None:
            paths = list_images(folder)
            frames: Iterator[np.ndarray] = readable_images(paths, unreadable)
            if max_frames is not None:
                frames = itertools.islice(frames, max_frames)
        else:
            source = VideoSource(video)
            frames = source.frames()
            if max_frames is not None:
                frames = (f for _, f in zip(range(max_frames), frames, strict=False))
        start = time.perf_counter()
        try:
            for group in _batches(frames, batch, clock):
                t = time.perf_counter()
                fitted = [fit(f, size, resize) for f in group]
                x = bgr8_to_tensor([f for f, _ in fitted])
                t = clock.add("preprocess", t)
                y = runner.infer(x)
                t = clock.add("infer", t)
                outs = [
                    restore(o, geo, keep_size)
                    for o, (_, geo) in zip(tensor_to_bgr8(y), fitted, strict=True)
                ]
                t = clock.add("postprocess", t)
                for i, o in enumerate(outs):
                    if folder is not None:
                        write_image(out_dir / f"{n + i:06d}.png", o)
                    else:
                        if sink is None:
                            assert source is not None
                            sink = VideoSink(
                                out_dir / "out.mp4", codec, source.fps, o.shape[1], o.shape[0]
                            )
                        sink.write(o)
                clock.add("encode", t)
                n += len(group)
            if sink is not None:
                t = time.perf_counter()
                sink.finish()
                clock.add("encode", t)
        finally:
            if source is not None:
                source.close()
        wall = time.perf_counter() - start
    if n == 0:
        raise DataError(f"{video or folder}: no frames could be decoded.")
    return {
        "source": str(folder or video),
        "kind": "folder" if folder is not None else "video",
        "runner": runner.describe(),
        "backend": runner.backend,
        "precision": runner.precision,
        "device": runner.device,
        "batch": batch,
        "frames": n,
        "unreadable": len(unreadable),  # folder images skipped (reasons in the log)
        "wall_s": round(wall, 4),
        "fps": round(n / wall, 3),
        "stages": [
            {
                "stage": s,
                "total_s": round(clock.seconds[s], 4),
                "ms_per_frame": round(1e3 * clock.seconds[s] / n, 4),
                "share_pct": round(100 * clock.seconds[s] / wall, 1) if wall > 0 else None,
            }
            for s in STAGES
        ],
        "method": "sequential stages on one thread (stage times add up to the wall time)",
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
