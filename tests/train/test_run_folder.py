"""`p2p train --out DIR` never overwrites a file it did not write (issue 11 item 1), and the
CSV logs use one line ending (issue 11, messages)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2p_deploy.atomic import temp_tag
from p2p_deploy.errors import P2PError
from p2p_deploy.train.loop import train
from p2p_deploy.train.run_folder import RUN_MARKER

HAND_WRITTEN = """# my experiment: keep this comment
[train]
image_size = 32
ngf = 8
ndf = 8
max_steps = 1
synthetic_train = 2
synthetic_val = 1
"""


@pytest.mark.slow
def test_config_beside_out_is_refused_and_kept(tmp_path: Path, subprocess_env) -> None:
    """The natural case: `p2p train --config exp1/config.toml --out exp1`."""
    exp = tmp_path / "exp1"
    exp.mkdir()
    (exp / "config.toml").write_text(HAND_WRITTEN)
    (exp / "samples").mkdir()
    (exp / "samples" / "mine.png").write_bytes(b"user data")
    r = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "train", "--config", str(exp / "config.toml"),
         "--out", str(exp), "--no-progress"],
        capture_output=True, text=True, timeout=120, env=subprocess_env,
    )  # fmt: skip
    assert r.returncode == 64, r.stderr  # the output may not be written: a usage error
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{exp}: holds config.toml, samples but no training run" in r.stderr
    assert (exp / "config.toml").read_text() == HAND_WRITTEN
    assert sorted(p.name for p in exp.rglob("*")) == ["config.toml", "mine.png", "samples"]


@pytest.mark.parametrize("name", ["config.json", "losses.csv", "val.csv", "loss_curve.png", "tb"])
def test_every_run_name_is_protected(tiny_train, tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text("the user's")
    with pytest.raises(P2PError, match=f"holds {name} but no training run"):
        train(tiny_train(max_steps=1))
    assert (run / name).read_text() == "the user's"
    assert not (run / RUN_MARKER).exists()


def test_folder_with_other_user_files_is_used_and_they_survive(tiny_train, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.md").write_text("mine")
    cfg = tiny_train(max_steps=2, log_every=1)
    train(cfg)
    assert (run / "notes.md").read_text() == "mine"
    assert (run / RUN_MARKER).is_file() and (run / "checkpoints" / "latest").is_dir()
    # One line ending in both logs (csv.writer's default is CRLF, the header was LF).
    for log in ("losses.csv", "val.csv"):
        data = (run / log).read_bytes()
        assert b"\r" not in data and data.count(b"\n") >= 2, (log, data)


def test_a_run_killed_before_its_first_checkpoint_can_start_again(
    tiny_train, tmp_path: Path
) -> None:
    """The marker makes the run's own early files (config, logs) the project's: a rerun
    without --resume may replace them."""
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_MARKER).write_text('{"format": "p2p-deploy/run", "pid": 1}')
    (run / "config.toml").write_text("# written by an earlier, killed run\n")
    (run / "losses.csv").write_text("step,epoch,d,g_gan,g_l1,lr\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = temp_tag().split("-")[1]
    stale = run / f".config.p2ptmp-{host}-{dead.pid}-a1b2c3d4.tmp.toml"  # a SIGKILL's leftover
    stale.write_text("partial")
    train(tiny_train(max_steps=1))
    assert "resolved p2p train config" in (run / "config.toml").read_text()
    assert not stale.exists()
    assert os.path.isdir(run / "checkpoints" / "latest")
