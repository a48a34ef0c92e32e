"""Triton model repository: config.pbtxt parsed with the tritonclient model-config protobuf."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from p2p_deploy.errors import P2PError
from p2p_deploy.export.parity import ort_session, random_images
from p2p_deploy.export.tensorrt_build import BatchProfile, engine_card
from p2p_deploy.export.triton import config_pbtxt, write_triton_repository
from p2p_deploy.models.card import read_export_card

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed (dev extra)"
)


def _parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_onnx_repository(tiny_onnx_fp16, tmp_path):
    config = write_triton_repository(
        tiny_onnx_fp16,
        tmp_path / "repo",
        model_name="gen",
        max_batch_size=16,
        preferred_batch_sizes=[4, 16],
    )
    assert config == tmp_path / "repo" / "gen" / "config.pbtxt"
    cfg = _parse(config.read_text())
    assert cfg.name == "gen" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 16
    assert cfg.default_model_filename == "model.onnx"
    (inp,), (out,) = cfg.input, cfg.output
    assert (inp.name, out.name) == ("input", "output")
    assert list(inp.dims) == [3, 32, 32] and list(out.dims) == [3, 32, 32]  # no batch axis
    assert (
        inp.data_type == model_config_pb2.TYPE_FP32 and out.data_type == model_config_pb2.TYPE_FP32
    )
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 16]
    # The copy in 1/ is the model itself: same outputs.
    copy = tmp_path / "repo" / "gen" / "1" / "model.onnx"
    x = random_images(2, 3, 32, seed=1)
    a = ort_session(copy).run(None, {"input": x})[0]
    b = ort_session(tiny_onnx_fp16).run(None, {"input": x})[0]
    assert np.array_equal(a, b)


def test_plan_config_uses_profile_and_fp16_io(tiny_onnx_fp16):
    side = engine_card(
        read_export_card(tiny_onnx_fp16),
        precision="fp16",
        profile=BatchProfile(1, 8, 32),
        trt_version="11.0.0",
        gpu_name=None,
        compute_capability=None,
    )
    import dataclasses

    side = dataclasses.replace(side, io_dtype="float16")
    cfg = _parse(
        config_pbtxt(
            side,
            "p2p_generator",
            max_batch_size=side.batch_profile[2],
            preferred_batch_sizes=[8, 32, 64],
        )
    )
    assert cfg.platform == "tensorrt_plan" and cfg.default_model_filename == "model.plan"
    assert cfg.max_batch_size == 32
    assert cfg.input[0].data_type == model_config_pb2.TYPE_FP16
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 32]  # 64 > max dropped
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU


def test_bad_repository_arguments(tiny_onnx_fp32, tmp_path):
    with pytest.raises(P2PError, match="Triton model name"):
        write_triton_repository(tiny_onnx_fp32, tmp_path, model_name="a b", max_batch_size=4)
    with pytest.raises(P2PError, match="no batch profile"):
        write_triton_repository(tiny_onnx_fp32, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(P2PError, match="cannot write the Triton model repository"):
        write_triton_repository(tiny_onnx_fp32, blocker, max_batch_size=4)
