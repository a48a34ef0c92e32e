"""`p2p train` and `p2p synth` through the real command line (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import sigint_as_ctrl_c

from p2p_deploy.models.opening import open_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def p2p(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "p2p_deploy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def test_help_pages() -> None:
    for cmd, words in (
        ("train", ["--resume", "--gan-mode", "--no-jitter", "--config"]),
        ("synth", ["--video", "--size", "BtoA"]),
    ):
        r = p2p(cmd, "--help")
        assert r.returncode == 0
        for w in words:
            assert w in r.stdout, (cmd, w)


@pytest.mark.slow
def test_synth_then_train_end_to_end(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    r = p2p(
        "synth",
        str(data),
        "--train",
        "4",
        "--val",
        "2",
        "--test",
        "1",
        "--size",
        "32",
        "--video",
        "3",
        "--labels",
        "2",
    )
    assert r.returncode == 0, r.stderr
    assert len(list((data / "train").glob("*.png"))) == 4
    # --labels: the B halves of the test pairs alone (what `p2p run` takes).
    label = cv2.imread(str(data / "labels" / "00001.png"))
    test_pair = cv2.imread(str(data / "test" / "00001.png"))
    assert label.shape == (32, 32, 3) and len(list((data / "labels").glob("*.png"))) == 2
    np.testing.assert_array_equal(label, test_pair[:, 32:])
    assert cv2.VideoCapture(str(data / "labels.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3
    cfg = tmp_path / "c.toml"
    cfg.write_text("ngf = 4\nndf = 8\nimage_size = 32\nepochs = 1\nepochs_decay = 0\n")
    r = p2p(
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--config",
        str(cfg),
        "--ngf",
        "8",
        "--log-every",
        "2",
        "--sample-every",
        "2",
    )
    assert r.returncode == 0, r.stderr
    assert "D " in r.stderr and "G_L1" in r.stderr and "val L1" in r.stderr
    gen = open_model(run)
    assert gen.card.generator.ngf == 8 and gen.card.direction == "BtoA"
    assert gen.card.training.step == 4
    assert "ngf = 8" in (run / "config.toml").read_text()
    # Resume with more epochs: continues from step 4, flags override the saved config.
    r = p2p("train", "--out", str(run), "--resume", "--epochs", "2", "--log-every", "2")
    assert r.returncode == 0, r.stderr
    assert "resumed from step 4" in r.stderr
    assert open_model(run).card.training.step == 8


@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path: Path) -> None:
    r = p2p("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error: ") and "data folder not found" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = p2p("train", "--image-size", "100", "--out", str(tmp_path / "r"))
    assert r.returncode == 64 and "not a power of two" in r.stderr  # a usage error
    r = p2p("train", "--out", str(tmp_path / "r2"), "--resume")
    assert r.returncode == 1 and "no checkpoints/latest" in r.stderr


def test_help_shows_the_defaults() -> None:
    # The options default to None (so only given flags override --config) and carry their
    # defaults in the help text; rich used to swallow an unescaped "[default: 64]" as markup.
    r = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**ENV, "COLUMNS": "200"},  # no wrapping inside the help's table
    )
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for shown in ("[default: 64]", "[default: BtoA]", "[default: synthetic]", "[default: 2e-4]"):
        assert shown in text, shown


@pytest.mark.slow
def test_out_under_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    tiny = ("--image-size", "32", "--ngf", "8", "--ndf", "8", "--max-steps", "1")
    # An output path that cannot be written is a usage error (exit 64), in every command.
    for out, message in ((blocker, "exists and is not a folder"), (blocker / "run", "cannot")):
        r = p2p("train", "--out", str(out), *tiny, "--no-progress")
        assert r.returncode == 64 and message in r.stderr and str(out) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = p2p("synth", str(blocker / "data"), "--train", "1", "--val", "0", "--test", "0")
    assert r.returncode == 64 and "a_file/data: output folder cannot be" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        *("--out", str(run), "--image-size", "32", "--ngf", "8", "--ndf", "8"),
        *("--synthetic-train", "2", "--synthetic-val", "1", "--checkpoint-every", "1"),
        *("--epochs", "1000", "--epochs-decay", "0", "--no-progress"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_deploy", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        preexec_fn=sigint_as_ctrl_c,
    )
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "latest").is_dir() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # One line that names the saved step and --resume (the generic "run the same command
    # again" fails for train: without --resume it refuses a folder that holds a run).
    last = err.strip().splitlines()[-1]
    step = open_model(run).card.training.step
    assert last.startswith("interrupted: ") and f"holds step {step}" in last and "--resume" in last
    assert "Traceback" not in err and "run the same command again" not in err
    assert not list((run / "checkpoints").glob(".*"))  # no half-swapped checkpoint folder
    r = p2p("train", *args, "--resume", "--max-steps", str(step + 1))
    assert r.returncode == 0 and f"resumed from step {step}" in r.stderr, r.stderr


@pytest.mark.slow
def test_resume_config_file_beats_the_saved_run_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        *("--image-size", "32", "--ngf", "8", "--ndf", "8", "--no-progress"),
        *("--synthetic-train", "2", "--synthetic-val", "1", "--epochs", "1", "--epochs-decay", "0"),
    ]
    r = p2p("train", "--out", str(run), "--log-every", "3", *args)
    assert r.returncode == 0, r.stderr
    # The file names the run folder (no --out) and changes options the saved config holds.
    toml = tmp_path / "more.toml"
    toml.write_text(f'out = "{run.as_posix()}"\nlog_every = 7\nlr = 1e-3\nepochs = 2\n')
    r = p2p("train", "--config", str(toml), "--resume", "--lr", "5e-4", "--no-progress")
    assert r.returncode == 0 and "resumed from step 2" in r.stderr, r.stderr
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["ngf"], cfg["image_size"], cfg["synthetic_train"]) == (8, 32, 2)  # saved run
    assert (cfg["log_every"], cfg["epochs"]) == (7, 2)  # the file beats the saved config
    assert cfg["lr"] == 5e-4  # flags beat the file
