"""`p2p train` on a full disk (issue 11 item 2): one line naming the OS's reason, never a
traceback, and the last good checkpoint survives. Real small tmpfs file systems (root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from smallfs import fill, tmpfs

from p2p_deploy.errors import P2PError
from p2p_deploy.models.opening import open_model
from p2p_deploy.train.loop import train


@pytest.mark.slow
def test_full_disk_is_one_line_not_a_traceback(tmp_path: Path, subprocess_env) -> None:
    # 1 MiB holds the config, logs and samples but not the first checkpoint (~4.7 MB).
    with tmpfs(tmp_path / "small", "1m") as fs:
        r = subprocess.run(
            [sys.executable, "-m", "p2p_deploy", "train", "--out", str(fs / "run"),
             "--image-size", "32", "--ngf", "8", "--ndf", "8", "--max-steps", "2",
             "--no-progress"],
            capture_output=True, text=True, timeout=180, env=subprocess_env,
        )  # fmt: skip
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert len(lines) == 1 and "No space left on device" in lines[0], r.stderr
        assert "training stopped at step" in lines[0]
        # Nothing half-written under a checkpoint's name; no temporary folder left.
        assert sorted(p.name for p in (fs / "run" / "checkpoints").iterdir()) == []


def test_full_disk_keeps_the_last_good_checkpoint(tiny_train, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "16m") as fs:
        cfg = tiny_train(out=str(fs / "run"), max_steps=1, sample_every=0)
        train(cfg)
        filler = fill(fs, leave=64 * 1024)  # room for logs, not for a checkpoint
        with pytest.raises(P2PError, match="No space left on device") as info:
            train(cfg.replace(max_steps=3), resume=True)
        assert "the last good checkpoint is" in str(info.value) and "(step 1)" in str(info.value)
        latest = fs / "run" / "checkpoints" / "latest"
        assert open_model(latest).card.training.step == 1
        assert not [p for p in latest.parent.iterdir() if p.name.startswith(".")]
        filler.unlink()  # space again: the same command continues from the checkpoint
        res = train(cfg.replace(max_steps=3), resume=True)
        assert res.resumed_from == 1 and res.step == 3


def test_a_sample_grid_that_cannot_be_written_stops_like_any_write(tiny_train, tmp_path) -> None:
    """Sample grids go through media.images.write_image: its one sentence (the OS's reason)
    still ends with where training stopped and the last good checkpoint."""
    cfg = tiny_train(max_steps=1)
    train(cfg)
    (tmp_path / "run" / "samples").write_text("in the way")
    with pytest.raises(P2PError, match=r"step_0000002\.png: cannot write \(Not a directory\)") as e:
        train(cfg.replace(max_steps=2, sample_every=1), resume=True)
    assert "training stopped at step 2; the last good checkpoint is" in str(e.value)
    assert "(step 1)" in str(e.value)
