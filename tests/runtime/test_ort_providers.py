"""ONNX Runtime GPU providers: profile and cache options, and a provider that cannot start
being an error that names what is missing (checked here with the CPU-only onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from p2p_deploy.errors import MissingDependency
from p2p_deploy.runners.factory import open_runner
from p2p_deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
from p2p_deploy.runners.ort_providers import (
    cuda_provider_options,
    provider_load_error,
    trt_profile_options,
    trt_provider_options,
)

CPU_ONLY = "CUDAExecutionProvider" not in ort.get_available_providers()


def test_trt_profile_shapes() -> None:
    opts = trt_profile_options("input", 3, 256, (1, 4, 16))
    assert opts == {
        "trt_profile_min_shapes": "input:1x3x256x256",
        "trt_profile_opt_shapes": "input:4x3x256x256",
        "trt_profile_max_shapes": "input:16x3x256x256",
    }
    with pytest.raises(ValueError, match="min <= opt <= max"):
        trt_profile_options("input", 3, 256, (4, 2, 8))


def test_trt_provider_has_profile_and_both_caches(tmp_path: Path) -> None:
    prof = trt_profile_options("input", 3, 32, (1, 2, 4))
    opts = trt_provider_options(1, True, tmp_path, prof)
    assert opts["device_id"] == 1 and opts["trt_fp16_enable"] is True
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"]
    assert opts["trt_engine_cache_path"] == opts["trt_timing_cache_path"] == str(tmp_path)
    assert opts["trt_profile_max_shapes"] == "input:4x3x32x32"
    assert cuda_provider_options(0) == {"device_id": 0, "use_tf32": 0}  # fp32 means fp32


def test_runner_profile_from_sidecar_or_default(tiny_onnx_fp32: Path, tmp_path: Path) -> None:
    runner = OnnxRuntimeRunner(tiny_onnx_fp32, device="cpu")
    assert runner.trt_batch == (1, 4, 16)  # an ONNX sidecar has no TensorRT profile
    assert OnnxRuntimeRunner(tiny_onnx_fp32, trt_batch=(2, 2, 8)).trt_batch == (2, 2, 8)


@pytest.mark.skipif(not CPU_ONLY, reason="needs the CPU-only onnxruntime package")
def test_cuda_asked_of_cpu_only_onnxruntime_names_what_is_missing(tiny_onnx_fp32: Path):
    reason = provider_load_error(ort, "CUDAExecutionProvider")
    assert "libonnxruntime_providers_cuda" in reason and "onnxruntime-gpu" in reason
    with pytest.raises(MissingDependency) as info:
        with open_runner(tiny_onnx_fp32, device="cuda"):
            pass  # pragma: no cover - never entered
    msg = str(info.value)
    assert "device cuda requested" in msg and "no CUDA provider" in msg
    assert "libonnxruntime_providers_cuda" in msg and "onnxruntime-gpu" in msg
    assert "\n" not in msg


def test_silent_cpu_fallback_is_an_error_when_cuda_was_asked(tiny_onnx_fp32: Path) -> None:
    """What ONNX Runtime does when the CUDA provider fails to start (cuDNN missing): the
    session comes up with the CPU provider only. With --device cuda that must not pass."""
    runner = OnnxRuntimeRunner(tiny_onnx_fp32, device="cuda")
    requested = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(MissingDependency, match=r"could not start its GPU provider \(CUDA"):
        runner._check_fallback(ort, requested, ["CPUExecutionProvider"])
    runner._check_fallback(ort, requested, requested)  # nothing dropped: fine
    auto = OnnxRuntimeRunner(tiny_onnx_fp32)  # default device: a warning, not an error
    auto._check_fallback(ort, requested, ["CPUExecutionProvider"])


def test_unknown_provider_reason() -> None:
    assert "see ONNX Runtime's log" in provider_load_error(ort, "MagicExecutionProvider")
