"""A CPU run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from p2p_deploy.train.checkpointing import load_state

SCRIPT = textwrap.dedent(
    """
    import json, logging, os, signal, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from p2p_deploy.train.config import TrainConfig
    from p2p_deploy.train.loop import train

    cfg = TrainConfig(**json.loads(sys.argv[1]))
    kill_at = int(sys.argv[2])
    resume = sys.argv[3] == "1"

    def on_step(info):
        if info.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no atexit: a real kill

    train(cfg, resume=resume, on_step=on_step)
    """
)


def _run(
    tmp: Path, cfg: dict, kill_at: int, resume: bool, env: dict
) -> subprocess.CompletedProcess:
    import json

    script = tmp / "job.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), json.dumps(cfg), str(kill_at), str(int(resume))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path: Path, subprocess_env: dict) -> None:
    base = dict(
        device="cpu",  # bit-identical on the CPU (cuDNN's algorithms are not deterministic)
        image_size=32,
        ngf=8,
        ndf=8,
        epochs=2,
        epochs_decay=1,
        synthetic_train=5,
        synthetic_val=2,
        log_every=1,
        sample_every=0,
        checkpoint_every=2,
        seed=3,
    )
    ref = {**base, "out": str(tmp_path / "ref")}
    cut = {**base, "out": str(tmp_path / "cut")}
    r = _run(tmp_path, ref, kill_at=-1, resume=False, env=subprocess_env)
    assert r.returncode == 0, r.stderr[-2000:]
    # Killed during step 9 (mid epoch 1); the last checkpoint is mid-epoch at step 8.
    r = _run(tmp_path, cut, kill_at=9, resume=False, env=subprocess_env)
    assert r.returncode == -9, r.stderr[-2000:]
    assert load_state(Path(cut["out"]) / "checkpoints" / "latest")["step"] == 8
    r = _run(tmp_path, cut, kill_at=-1, resume=True, env=subprocess_env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from step 8" in r.stderr
    a = load_file(str(Path(ref["out"]) / "checkpoints/latest/generator.safetensors"))
    b = load_file(str(Path(cut["out"]) / "checkpoints/latest/generator.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "generator weights differ after resume"
    sa = load_state(Path(ref["out"]) / "checkpoints/latest")
    sb = load_state(Path(cut["out"]) / "checkpoints/latest")
    assert sa["step"] == sb["step"] == 15
    assert all(
        torch.equal(sa["discriminator"][k], sb["discriminator"][k]) for k in sa["discriminator"]
    )
    # The losses log was rewound to the checkpoint and continued: one row per step, no repeats.
    steps = [
        int(line.split(",")[0])
        for line in (Path(cut["out"]) / "losses.csv").read_text().splitlines()[1:]
    ]
    assert steps == list(range(1, 16))
