"""The end-to-end run: `p2p run`'s pipeline and the I/O ceiling, over a folder and a video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from p2p_deploy.bench.e2e import CEILING_ROUNDS, STAGES, load_folder_inputs, run_e2e
from p2p_deploy.errors import DataError


@pytest.fixture(scope="module")
def ort_runner(tiny_onnx_fp32):
    from p2p_deploy.runners.factory import open_runner

    with open_runner(tiny_onnx_fp32, "onnxruntime", device="cpu", threads=1) as r:
        yield r


def _check(e2e, frames):
    assert e2e["frames"] == frames and e2e["fps"] > 0
    assert list(e2e["stage_seconds"]) == list(STAGES)
    assert all(e2e["stage_seconds"][s] > 0 for s in ("decode", "infer", "encode"))
    assert e2e["bound_by"] in ("model", "decode", "encode", "copies")
    w = e2e["workers"]
    assert set(e2e["io_ceiling"]) == {"1", str(w)}
    # An instant model: the pipeline alone, faster than with the real one.
    assert all(c["fps"] > 0 for c in e2e["io_ceiling"].values())
    # The median of CEILING_ROUNDS runs per worker count, each run kept.
    for c in e2e["io_ceiling"].values():
        runs = sorted(c["fps_runs"])
        assert len(runs) == CEILING_ROUNDS and runs[CEILING_ROUNDS // 2] == c["fps"]


@pytest.mark.slow
def test_folder(ort_runner, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):  # odd sizes: fitting and restoring are part of the timed stages
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (20 + i, 40, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    before = sorted(p.name for p in tmp_path.iterdir())
    e2e = run_e2e(ort_runner, folder=tmp_path, batch=2, workers=2)
    _check(e2e, 5)
    assert e2e["kind"] == "folder" and e2e["batch"] == 2 and e2e["workers"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # outputs went to a temp dir
    capped = run_e2e(ort_runner, folder=tmp_path, batch=2, workers=1, max_frames=3)
    assert capped["frames"] == 3 and set(capped["io_ceiling"]) == {"1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    x = load_folder_inputs(tmp_path, 32, 3)
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.float32 and -1 <= x.min() <= x.max() <= 1


def test_video(ort_runner, tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 32))
    assert w.isOpened()
    for i in range(7):
        w.write(np.full((32, 48, 3), 30 * i, np.uint8))
    w.release()
    e2e = run_e2e(ort_runner, video=path, batch=3, max_frames=6)
    _check(e2e, 6)
    assert e2e["kind"] == "video"


def test_bad_inputs(ort_runner, tmp_path):
    with pytest.raises(DataError, match="no images"):
        run_e2e(ort_runner, folder=tmp_path)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(DataError, match="bad.mp4"):
        run_e2e(ort_runner, video=bad)


def test_unreadable_images_are_skipped_and_counted(ort_runner, tmp_path):
    """One bad file in a folder does not end the benchmark after every row was timed."""
    rng = np.random.default_rng(1)
    (tmp_path / "0_empty.png").write_bytes(b"")
    for i in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (24, 24, 3), np.uint8))
    (tmp_path / "2_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    e2e = run_e2e(ort_runner, folder=tmp_path, batch=2)
    _check(e2e, 3)
    assert e2e["unreadable"] == 2
    assert load_folder_inputs(tmp_path, 32, 2).shape == (2, 3, 32, 32)  # bad first file skipped
    for p in tmp_path.glob("[0-9].png"):
        p.unlink()
    with pytest.raises(DataError, match="no readable image.*0_empty.png: empty file"):
        load_folder_inputs(tmp_path, 32, 2)


def test_infer_stage_is_the_pipelines_frames_path(tmp_path):
    """The bench's end-to-end run is the pipeline: frames go to the runner as uint8 (where a
    GPU runner converts on the device, as ``p2p run`` does), batched across files."""
    from p2p_deploy.runners.base import Runner

    class FramesOnly(Runner):
        backend = "frames-only"

        def __init__(self) -> None:
            super().__init__()
            self.image_size, self.calls = 32, []

        def _infer_chunk(self, batch):  # pragma: no cover - must not be reached
            raise AssertionError("the bench converted on the CPU instead of infer_frames")

        def _submit_frames_chunk(self, frames):
            from p2p_deploy.runners.base import Pending

            self.calls.append(len(frames))
            out = 255 - frames
            return Pending(lambda: out)

    rng = np.random.default_rng(2)
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), np.uint8))
    with FramesOnly() as runner:
        e2e = run_e2e(runner, folder=tmp_path, batch=2, workers=1)
    assert runner.calls == [2, 2, 1]
    assert e2e["frames"] == 5 and e2e["unreadable"] == 0
