"""The threaded pipeline with real files: order, partial batches, failures, skipping, atomic
outputs, bounded memory. Uses a small exact runner (colour negation) so that every output pixel
can be checked against its own input; the real model runners are covered in test_runners and
through the CLI tests."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.media_files import BAD_IMAGES, GOOD_IMAGES, random_bgr, write_video

from p2p_deploy.media.files import OUTPUT_MARKER
from p2p_deploy.pipeline.items import Frame
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.run import prepare, run_pipeline
from p2p_deploy.runners.base import Runner


class NegateRunner(Runner):
    """x -> -x in [-1, 1] (255 - pixel in uint8): exact, so outputs identify their inputs."""

    backend = "negate"

    def __init__(self, probe_every: int = 0) -> None:
        super().__init__()
        self.image_size = 32
        self.is_active = True  # nothing to load: usable without a ``with``
        self.calls: list[int] = []
        self.probe_every = probe_every
        self.peak_live_frames = 0

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape[0])
        if self.probe_every and len(self.calls) % self.probe_every == 0:
            live = sum(type(o) is Frame for o in gc.get_objects())
            self.peak_live_frames = max(self.peak_live_frames, live)
        return -batch


def _files(root: Path) -> list[str]:
    """Every file under ``root`` but the output folder's marker."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != OUTPUT_MARKER
    )


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_order_and_partial_batches(tmp_path: Path, batch: int) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(7):  # 7 frames: no batch size here divides it
        cv2.imwrite(str(src / f"{i:02d}.png"), random_bgr(32, 32, i))
    runner = NegateRunner()
    opts = RunOptions(batch=batch)
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), runner, opts)
    assert (summary.done, summary.failed, summary.frames) == (7, 0, 7)
    assert sum(runner.calls) == 7 and max(runner.calls) <= batch
    for i in range(7):
        out = cv2.imread(str(tmp_path / "out" / f"{i:02d}.png"))
        assert np.array_equal(out.astype(int), 255 - random_bgr(32, 32, i).astype(int)), i


def test_bad_inputs_listed_and_rest_processed(image_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = RunOptions(batch=2)
    summary = run_pipeline(prepare(image_tree, out, opts), NegateRunner(), opts)
    assert summary.done == len(GOOD_IMAGES) and summary.failed == len(BAD_IMAGES)
    assert summary.ignored == 1 and summary.exit_code == 2
    assert _files(out) == sorted([*GOOD_IMAGES, "failures.json"])
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert sorted(Path(f["path"]).relative_to(image_tree).as_posix() for f in failures) == sorted(
        BAD_IMAGES
    )
    assert all(f["path"] in f["reason"] for f in failures)
    # keep-size: every output has its input's size (gray/RGBA/16-bit converted to 3 channels)
    assert cv2.imread(str(out / "b.png")).shape == (30, 40, 3)
    assert cv2.imread(str(out / "deep.png")).shape == (24, 24, 3)

    # rerun: good outputs skipped, bad ones retried and still failing
    again = run_pipeline(prepare(image_tree, out, opts), NegateRunner(), opts)
    assert (again.done, again.skipped, again.failed, again.exit_code) == (0, len(GOOD_IMAGES), 3, 2)
    redo = RunOptions(batch=2, overwrite=True)
    assert run_pipeline(prepare(image_tree, out, redo), NegateRunner(), redo).done == len(
        GOOD_IMAGES
    )


def test_all_bad_is_exit_1(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "x.jpg").write_bytes(b"")
    opts = RunOptions()
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), NegateRunner(), opts)
    assert summary.exit_code == 1


def test_video_keeps_count_and_fps_and_side_by_side(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "clip.avi", 9, fps=15.0, size=(48, 36))
    cv2.imwrite(str(src / "still.png"), random_bgr(32, 32, 0))
    (src / "broken.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 64)
    opts = RunOptions(batch=4, side_by_side=True, resize="pad")
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), NegateRunner(), opts)
    assert (summary.done, summary.failed, summary.frames) == (2, 1, 10)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 9 and cap.get(cv2.CAP_PROP_FPS) == 15.0
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        96,
        36,
    )
    cap.release()
    assert cv2.imread(str(tmp_path / "out" / "still.png")).shape == (32, 64, 3)
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]


def test_interrupted_video_leaves_no_partial_output(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", 30)

    class Interrupting(NegateRunner):
        def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
            if len(self.calls) == 5:
                raise KeyboardInterrupt
            return super()._infer_chunk(batch)

    opts = RunOptions(batch=2)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(prepare(tmp_path / "clip.avi", tmp_path / "out", opts), Interrupting(), opts)
    assert _files(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


@pytest.mark.slow
def test_memory_is_bounded_by_the_queues(tmp_path: Path) -> None:
    """Structural: frames alive at once stay within the queue bounds for a long video."""
    write_video(tmp_path / "long.avi", 150, size=(32, 32))
    opts = RunOptions(batch=2)
    runner = NegateRunner(probe_every=5)
    summary = run_pipeline(prepare(tmp_path / "long.avi", tmp_path / "out", opts), runner, opts)
    assert summary.frames == 150
    # in_q (<= 4 items, so <= 4 frames) + one batch being run (2) + out_q (<= 2 batches of 2)
    # + the writer's batch
    bound = opts.in_queue_size + opts.batch + 2 * opts.batch + opts.batch + 2
    assert 0 < runner.peak_live_frames <= bound


def test_writer_crash_is_raised_not_hidden_and_failures_kept(tmp_path: Path) -> None:
    """An unexpected error in the writer thread (here from the on_frame callback, which runs
    there) reaches the caller as itself, not as the pipeline's internal Stopped, and the
    failures met before it are still written to failures.json."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_broken.png").write_bytes(b"not a png")
    for i in range(12):
        cv2.imwrite(str(src / f"b{i:02d}.png"), random_bgr(32, 32, i))

    def on_frame(n: int) -> None:
        raise OSError(28, "No space left on device")

    opts = RunOptions(batch=1, queue_frames=1)
    prepared = prepare(src, tmp_path / "out", opts)
    with pytest.raises(OSError, match="No space left") as info:
        run_pipeline(prepared, NegateRunner(), opts, on_frame=on_frame)
    assert type(info.value) is OSError
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())["failures"]
    assert [Path(f["path"]).name for f in failures] == ["a_broken.png"]
