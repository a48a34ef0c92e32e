"""The OpenVINO runner beyond the shared conformance test: precision labels read back from the
compiled model, threads, IR files, static batch axes, `auto` picking it on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from p2p_deploy.errors import P2PError
from p2p_deploy.models.opening import open_model
from p2p_deploy.runners.factory import auto_backend, open_runner

ov = pytest.importorskip("openvino", reason="openvino is not installed")


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32)


def test_precision_labels_come_from_the_compiled_model(
    tiny_onnx_fp32: Path, tiny_onnx_int8: Path
) -> None:
    from p2p_deploy.runners.openvino_runner import cpu_bf16_supported

    with open_runner(tiny_onnx_fp32, "openvino") as r:
        # f32 set explicitly: OpenVINO's default on AMX/AVX512_BF16 CPUs would be bf16
        assert r.precision == "fp32" and r.conv_precisions == {"fp32": 10}
    with open_runner(tiny_onnx_int8, "openvino") as r:
        assert r.precision == "int8" and r.conv_precisions == {"int8": 10}
    with open_runner(tiny_onnx_fp32, "openvino", precision="bf16") as r:
        if cpu_bf16_supported():
            assert r.conv_precisions.get("bf16", 0) > 0
            assert r.precision in ("bf16", "bf16+fp32")
            assert "bf16 hint" in r.describe()
        else:  # the hint is not honoured: the label says what runs
            assert r.precision == "fp32"
    with pytest.raises(P2PError, match="fp32 or bf16"):
        open_runner(tiny_onnx_fp32, "openvino", precision="fp16")


def test_threads_are_honoured(tiny_onnx_fp32: Path) -> None:
    with open_runner(tiny_onnx_fp32, "openvino", threads=1) as r:
        compiled, _ = r._compiled[(1, 32, 32)]  # (batch, height, width)
        assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        assert "1 threads" in r.describe()
        assert r.infer(_x(2)).shape == (2, 3, 32, 32)


def test_ir_xml_with_static_batch(tiny_onnx_fp32: Path, tmp_path: Path) -> None:
    core = ov.Core()
    model = core.read_model(str(tiny_onnx_fp32))
    model.reshape([1, 3, 32, 32])  # an IR saved for batch 1: every call is split into rows
    xml = tmp_path / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    assert open_model(xml).backend == "openvino"
    x = _x(3)
    with open_runner(tiny_onnx_fp32, "onnxruntime", device="cpu") as ref_runner:
        ref = ref_runner.infer(x)
    with open_runner(xml) as r:  # no sidecar: size from the graph, test norm unknown
        assert (r.min_batch, r.max_batch, r.image_size) == (1, 1, 32)
        assert r.test_norm == "unknown"
        assert np.abs(r.infer(x) - ref).max() < 1e-4
    with pytest.raises(P2PError, match="cannot run on the onnxruntime backend"):
        open_runner(xml, "onnxruntime")


def test_auto_picks_openvino_on_the_cpu(
    tiny_onnx_fp32: Path, tiny_onnx_fp16: Path, tiny_onnx_int8: Path, tiny_checkpoint: Path
) -> None:
    assert auto_backend(open_model(tiny_onnx_fp32), "cpu") == "openvino"
    assert auto_backend(open_model(tiny_onnx_int8), "cpu") == "openvino"
    assert auto_backend(open_model(tiny_onnx_fp16), "cpu") == "onnxruntime"  # made for GPUs
    assert auto_backend(open_model(tiny_onnx_fp32), "cuda") == "onnxruntime"
    assert auto_backend(open_model(tiny_checkpoint), "cpu") == "torch"
    runner = open_runner(tiny_onnx_int8, device="cpu")
    assert runner.backend == "openvino"
    with pytest.raises(P2PError, match="runs on the CPU"):
        open_runner(tiny_onnx_fp32, "openvino", device="cuda")
