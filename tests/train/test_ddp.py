"""Two CPU processes with gloo under torch.distributed.run: sharded data, rank 0 writes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from p2p_deploy.models.opening import open_model
from p2p_deploy.train.checkpointing import load_state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo(tmp_path: Path, subprocess_env: dict) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "p2p_deploy",
        "train",
        "--out",
        str(out),
        "--image-size",
        "32",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--epochs",
        "1",
        "--epochs-decay",
        "0",
        "--synthetic-train",
        "6",
        "--synthetic-val",
        "2",
        "--device",
        "cpu",  # gloo on the CPU, also on a machine with one GPU
        "--log-every",
        "1",
        "--no-progress",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=subprocess_env)
    assert r.returncode == 0, r.stderr[-3000:]
    # 6 pairs over 2 ranks at batch 1: 3 optimiser steps, each logged once (rank 0 alone logs).
    assert r.stderr.count("epoch 0 step 3 ") == 1
    state = load_state(out / "checkpoints" / "latest")
    assert state["step"] == 3 and state["world_size"] == 2
    gen = open_model(out)
    assert not any(k.startswith("module.") for k in gen.generator().state_dict())
    assert gen.card.training.step == 3
