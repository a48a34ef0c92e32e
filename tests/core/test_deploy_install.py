"""A deploy install has no torch: ``pip install "p2p-deploy[cpu]"`` into a fresh venv, then
``p2p run`` (images and a video), ``p2p doctor``, ``p2p bench --onnx`` and ``p2p eval`` on an
ONNX model exported here (in this, the test suite's, process: the fresh venv cannot export).

Needs the package registry (or pip's cache, which ``make test``'s own install filled with the
same wheels): pip resolves the ``cpu`` extra from the wheel's metadata, so a torch that crept
back into the base dependencies would be installed and fail the test. The venv is made without
pip (this venv's pip installs into it with ``--python``) to keep it quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from helpers import build_wheel
from runtime.media_files import random_bgr, write_video

pytestmark = pytest.mark.slow

FRAMES = 6


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def deploy_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only ``p2p-deploy[cpu]`` (its ``bin/`` folder)."""
    root = tmp_path_factory.mktemp("deploy")
    wheel = build_wheel(root / "wheel")
    venv = root / "venv"
    res = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    assert res.returncode == 0, res.stderr[-2000:]
    py = venv / "bin" / "python"
    res = _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
         "--disable-pip-version-check", f"{wheel}[cpu]"],
        root,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return venv / "bin"


def test_cpu_extra_installs_no_torch(deploy_venv: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.metadata as md, importlib.util as u, json; "
        "print(json.dumps({'dists': sorted(d.metadata['Name'].lower() for d in md.distributions()),"
        " 'torch': u.find_spec('torch') is not None}))"
    )
    res = _run([str(deploy_venv / "python"), "-c", code], tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert not got["torch"]
    heavy = [d for d in got["dists"] if d in ("torch", "onnx", "tensorboard")
             or d.startswith("nvidia-")]
    assert heavy == [], heavy
    assert "onnxruntime" in got["dists"] and "p2p-deploy" in got["dists"]


def test_run_doctor_and_bench_without_torch(
    deploy_venv: Path, tiny_onnx_fp32: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    p2p = str(deploy_venv / "p2p")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        cv2.imwrite(str(inputs / f"{i}.png"), random_bgr(40, 48, i))
    write_video(inputs / "clip.mp4", FRAMES, codec="mp4v")

    out = tmp_path / "out"
    res = _run([p2p, "run", str(inputs), "--engine", str(tiny_onnx_fp32), "--out", str(out),
                "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "onnxruntime fp32 on cpu" in res.stdout + res.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "0.png", "1.png", "2.png", "clip.mp4"
    ]
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    cap.release()

    res = _run([p2p, "doctor"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "torch: not installed" in res.stdout and 'p2p-deploy[train]' in res.stdout
    assert "onnxruntime: " in res.stdout

    report = tmp_path / "bench"
    res = _run([p2p, "bench", "--onnx", str(tiny_onnx_fp32), "--batch", "1", "--warmup", "0",
                "--duration", "0.1", "--min-iters", "2", "--out", str(report)], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = json.loads((report / "report.json").read_text())["results"]
    assert [(r["backend"], r["batch"]) for r in rows] == [("onnxruntime", 1)]
    assert (report / "latency.png").is_file()

    data = tmp_path / "data"
    res = _run([p2p, "synth", str(data), "--train", "0", "--val", "0", "--test", "2",
                "--labels", "0", "--size", "32"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    res = _run([p2p, "eval", str(tiny_onnx_fp32), "--data", str(data), "--split", "test",
                "--out", str(tmp_path / "eval")], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "eval" / "eval.json").is_file()

    # What needs torch says so in one line, naming the extra.
    for cmd in ([p2p, "export", str(tiny_checkpoint), "--out", str(tmp_path / "x")],
                [p2p, "run", str(inputs), "--engine", str(tiny_checkpoint),
                 "--out", str(tmp_path / "t")]):
        res = _run(cmd, tmp_path)
        assert res.returncode == 1, res.stdout + res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and 'pip install "p2p-deploy[train]"' in lines[0], res.stderr
