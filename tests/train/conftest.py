"""Fixtures for the training tests: tiny configs (32 px, ngf/ndf 8) and tiny data folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture
def tiny_train(tmp_path: Path):
    """Factory: a tiny TrainConfig writing into tmp_path/run (overrides as keyword args)."""
    from p2p_deploy.train.config import TrainConfig

    def make(**overrides):
        base = dict(
            out=str(tmp_path / "run"),
            image_size=32,
            ngf=8,
            ndf=8,
            epochs=1,
            epochs_decay=0,
            synthetic_train=4,
            synthetic_val=2,
            log_every=1,
            sample_every=0,
            save_every=1,
        )
        return TrainConfig(**{**base, **overrides})

    return make


def write_aligned(folder: Path, n: int, h: int = 40, seed: int = 0) -> list[Path]:
    """n aligned images (h x 2h) with a distinct left (A) and right (B) half."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        a = np.full((h, h, 3), (0, 0, 200), np.uint8)  # BGR red photo half
        b = np.full((h, h, 3), (200, 0, 0), np.uint8)  # BGR blue label half
        a[: h // 2] += rng.integers(0, 40, (h // 2, h, 3), dtype=np.uint8)
        p = folder / f"{i:03d}.png"
        assert cv2.imwrite(str(p), np.concatenate([a, b], axis=1))
        paths.append(p)
    return paths


@pytest.fixture(name="write_aligned")
def _write_aligned_fixture():
    """The :func:`write_aligned` helper, as a fixture (conftest modules are not importable)."""
    return write_aligned


@pytest.fixture
def aligned_dir(tmp_path: Path) -> Path:
    """An aligned dataset: train/ (4 images), val/ (2)."""
    root = tmp_path / "aligned"
    write_aligned(root / "train", 4)
    write_aligned(root / "val", 2, seed=1)
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Single-threaded torch in these tests: on a shared 2-core CPU, OpenMP threads that spin
    against other processes make tiny models many times slower, not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_thread_env() -> dict[str, str]:
    """Environment for training subprocesses (same reason as :func:`_one_torch_thread`)."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(name="subprocess_env")
def _subprocess_env() -> dict[str, str]:
    return one_thread_env()
