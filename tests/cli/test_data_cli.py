"""`p2p data list` / `p2p data download` through the real command line, then `p2p train` on the
downloaded folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_server import SPLITS, make_archive, serve_folder

from p2p_deploy.models.opening import open_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def p2p(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "p2p_deploy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def test_data_list() -> None:
    r = p2p("data", "list")
    assert r.returncode == 0, r.stderr
    for word in (
        "facades",
        "cityscapes",
        "maps",
        "edges2shoes",
        "edges2handbags",
        "night2day",
        "BtoA",
        "AtoB",
        "unknown",
        "efrosgans.eecs.berkeley.edu",
    ):
        assert word in r.stdout, word


@pytest.mark.slow
def test_download_then_train(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_archive(mirror / "facades.tar.gz")
    to = tmp_path / "datasets"
    with serve_folder(mirror) as srv:
        r = p2p(
            "data",
            "download",
            "facades",
            "--to",
            str(to),
            "--mirror",
            srv.base_url,
            "--no-progress",
        )
    assert r.returncode == 0, r.stderr
    assert "no checksum on the mirror" in r.stderr
    assert "splits: train 3, val 1, test 2" in r.stderr
    assert f"train with: p2p train --data {to / 'facades'} --direction BtoA" in r.stderr
    assert sorted(p.name for p in (to / "facades").iterdir()) == sorted(SPLITS)

    run = tmp_path / "run"
    r = p2p(
        "train",
        "--data",
        str(to / "facades"),
        "--direction",
        "BtoA",
        "--out",
        str(run),
        "--image-size",
        "32",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--max-steps",
        "2",
        "--no-progress",
        "--log-every",
        "1",
    )
    assert r.returncode == 0, r.stderr
    loaded = open_model(run)
    assert loaded.card.direction == "BtoA" and loaded.card.training.step == 2


def test_download_errors_are_one_line(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with serve_folder(mirror) as srv:
        r = p2p(
            "data",
            "download",
            "facades",
            "--to",
            str(tmp_path / "d"),
            "--mirror",
            srv.base_url,
            "--no-progress",
        )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: {srv.base_url}/facades.tar.gz: not found on the mirror (HTTP 404)."
    ]
    r = p2p("data", "download", "nope", "--no-progress")
    assert r.returncode == 1 and "unknown dataset" in r.stderr and "Traceback" not in r.stderr
