"""Shared fixtures: tiny generators and checkpoints on disk; automatic gpu/trt skips.

Tests run on a 2-core CPU: every model here is tiny (ngf 8, 32 px, 5 downsamplings) unless the
full architecture itself is what a test is about.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import TINY, make_tiny_generator


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = _cuda_available()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is visible to torch on this machine")
    skip_trt = pytest.mark.skip(
        reason="needs TensorRT and a CUDA GPU"
        + ("" if has_trt else "; the tensorrt package is not installed")
        + ("" if has_cuda else "; no CUDA GPU")
    )
    for item in items:
        if "trt" in item.keywords and not (has_trt and has_cuda):
            item.add_marker(skip_trt)
        elif "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_config():
    """A 32 px U-Net with ngf 8 and batch norm (5 downsamplings, ~0.2 M parameters)."""
    from p2p_deploy.config import GeneratorConfig

    return GeneratorConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny batch-norm generator saved as ``generator.safetensors`` + ``generator.json``."""
    from p2p_deploy.checkpoint import save_generator

    path = tmp_path_factory.mktemp("ckpt") / "generator.safetensors"
    save_generator(make_tiny_generator(), path, {"direction": "BtoA", "step": 0})
    return path


@pytest.fixture(scope="session")
def tiny_instance_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny instance-norm generator checkpoint."""
    from p2p_deploy.checkpoint import save_generator

    path = tmp_path_factory.mktemp("ckpt_in") / "generator.safetensors"
    save_generator(make_tiny_generator(seed=1, norm="instance"), path, {"direction": "BtoA"})
    return path
