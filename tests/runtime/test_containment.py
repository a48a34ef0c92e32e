"""Nothing leaves its folder (issue 20, class 2) on the output side of `p2p run`: an output
path built from an input's name is checked with ``p2p_deploy.paths.escape_reason`` against
the links already in the output folder. Real links, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from runtime.media_files import random_bgr

from p2p_deploy.errors import DataError
from p2p_deploy.media.video import VideoSource


def test_a_link_inside_the_output_folder_does_not_carry_outputs_out(
    tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), random_bgr(32, 32, 0))
    cv2.imwrite(str(src / "sub" / "b.png"), random_bgr(32, 32, 1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.png").write_bytes(b"the user's file")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)  # out/sub/b.png would land in elsewhere/
    r = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "run", str(src), "-e", str(tiny_onnx_fp32),
         "-o", str(out), "--overwrite", "--no-progress"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("failed: ")]
    assert len(failed) == 1 and "b.png" in failed[0] and "leads outside" in failed[0], r.stderr
    assert (elsewhere / "b.png").read_bytes() == b"the user's file"
    assert (out / "a.png").is_file()


def test_a_video_that_is_no_plain_file_names_the_reason(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "v.mp4")
    with pytest.raises(DataError, match="not a regular file"):
        VideoSource(tmp_path / "v.mp4")
    (tmp_path / "e.mp4").write_bytes(b"")
    with pytest.raises(DataError, match="empty video file"):
        VideoSource(tmp_path / "e.mp4")
