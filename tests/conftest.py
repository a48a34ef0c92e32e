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
    from p2p_deploy.models.config import GeneratorConfig

    return GeneratorConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny batch-norm generator saved as ``generator.safetensors`` + ``generator.json``."""
    from helpers import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "generator.safetensors"
    save_checkpoint(make_tiny_generator(), path, {"direction": "BtoA", "step": 0})
    return path


@pytest.fixture(scope="session")
def tiny_instance_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny instance-norm generator checkpoint."""
    from helpers import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt_in") / "generator.safetensors"
    save_checkpoint(make_tiny_generator(seed=1, norm="instance"), path, {"direction": "BtoA"})
    return path


def _export_tiny(
    tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, precision: str
) -> Path:
    from p2p_deploy.export.onnx_export import export_onnx
    from p2p_deploy.models.opening import open_model

    loaded = open_model(checkpoint)
    name = "model.onnx" if precision == "fp32" else "model_fp16.onnx"
    path = tmp_path_factory.mktemp(f"onnx_{precision}") / name
    export_onnx(loaded.generator(), path, precision=precision, card=loaded.card)
    return path


@pytest.fixture(scope="session")
def tiny_onnx_fp32(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """``model.onnx`` (+ ``model.onnx.json``) exported from ``tiny_checkpoint``: fp32, ``stats``
    test norm, input/output (N, 3, 32, 32) float32 in [-1, 1], dynamic N."""
    return _export_tiny(tmp_path_factory, tiny_checkpoint, "fp32")


@pytest.fixture(scope="session")
def tiny_onnx_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """``model_fp16.onnx`` (+ sidecar) from ``tiny_checkpoint``: fp16 weights and compute,
    float32 input/output with Casts, ``stats`` test norm, (N, 3, 32, 32), dynamic N."""
    return _export_tiny(tmp_path_factory, tiny_checkpoint, "fp16")


@pytest.fixture(scope="session")
def tiny_onnx_int8(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_fp32: Path) -> Path:
    """``model_int8.onnx`` (+ sidecar) from ``tiny_onnx_fp32``: the INT8 QDQ graph made by the
    export's own step, calibrated on 16 and gated on 4 uniform-noise images (the kind of input
    the runner tests feed it, other seeds)."""
    import numpy as np

    from p2p_deploy.export.calibration import CalibrationSet
    from p2p_deploy.export.int8_export import Int8Options, stage_int8

    rng = np.random.default_rng(1234)
    noise = rng.uniform(-1, 1, (20, 3, 32, 32)).astype(np.float32)
    folder = tmp_path_factory.mktemp("onnx_int8")
    calib = CalibrationSet(noise[:16], noise[16:], "uniform noise")
    return stage_int8(tiny_onnx_fp32, folder, calib, Int8Options()).staged
