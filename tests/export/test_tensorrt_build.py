"""TensorRT build: everything around the engine without TensorRT; the real build marked ``trt``."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_deploy.errors import MissingDependency, P2PError
from p2p_deploy.export.tensorrt_build import (
    BatchProfile,
    EnginePrecision,
    NoTensorRTGpu,
    build_engine,
    create_builder,
    dtype_word,
    engine_sidecar,
    network_flags,
    parse_batch_profile,
    plan_name,
    read_timing_cache,
    summarize_engine_info,
    trt_features,
    verify_engine_precision,
    write_plan,
    write_timing_cache,
)
from p2p_deploy.sidecar import ModelSidecar, sidecar_for

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_parse_batch_profile():
    assert parse_batch_profile("1:4:16") == BatchProfile(1, 4, 16)
    assert parse_batch_profile(" 8 ") == BatchProfile(8, 8, 8)
    assert parse_batch_profile("2:2:2").shapes(3, 32) == ((2, 3, 32, 32),) * 3


@pytest.mark.parametrize("bad", ["", "0:1:2", "4:2:8", "1:4", "a:b:c", "1:4:16:32", "-1:2:3"])
def test_parse_batch_profile_rejects(bad):
    with pytest.raises(P2PError, match=r"--batch .*MIN:OPT:MAX"):
        parse_batch_profile(bad)


@given(st.integers(1, 64), st.integers(0, 64), st.integers(0, 64))
def test_parse_batch_profile_roundtrip(a, da, db):
    prof = parse_batch_profile(f"{a}:{a + da}:{a + da + db}")
    assert prof.as_list() == [a, a + da, a + da + db]


def test_version_dispatch():
    v10 = trt_features("10.3.0.26")
    assert (v10.major, v10.minor) == (10, 3)
    v11 = trt_features("11.0.0")
    # What the flags become: STRONGLY_TYPED (enum value 5 here) on 10.x, nothing on 11.x.
    fake_trt = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=5))
    assert network_flags(fake_trt, v10) == 1 << 5
    assert network_flags(SimpleNamespace(), v11) == 0  # 11.x: the flag is not even looked up
    with pytest.raises(P2PError, match=r"TensorRT 8\.6\.1 is too old: .*10\.x or 11\.x"):
        trt_features("8.6.1")
    with pytest.raises(P2PError, match="cannot read the TensorRT version"):
        trt_features("unknown")


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("DataType.HALF", "fp16"),
        ("Half", "fp16"),
        ("Row major linear FP16 format (kLINEAR)", "fp16"),
        ("DataType.FLOAT", "fp32"),
        ("Float", "fp32"),
        ("Row major linear FP32 format", "fp32"),
        ("Int32", "int32"),
        ("something", "unknown"),
    ],
)
def test_dtype_word(text, word):
    assert dtype_word(text) == word


# Inspector JSON in the shapes the TensorRT docs show: 10.x puts the dtype in "Format/Datatype",
# 11.x in its own "DataType" field and lists I/O under "I/O Tensors".
ENGINE_10 = {
    "Layers": [
        {
            "Name": "cast_in",
            "Outputs": [{"Name": "x16", "Format/Datatype": "Row major linear FP16 format"}],
        },
        {
            "Name": "conv1",
            "Outputs": [{"Name": "c1", "Format/Datatype": "Channel major FP16 format"}],
        },
        {
            "Name": "cast_out",
            "Outputs": [{"Name": "output", "Format/Datatype": "Row major linear FP32 format"}],
        },
    ],
    "Bindings": ["input", "output"],
}
ENGINE_11_MIXED = {
    "Layers": [
        {"Name": "conv1", "Outputs": [{"Name": "c1", "Format": "kLINEAR", "DataType": "Half"}]},
        {"Name": "norm1", "Outputs": [{"Name": "n1", "Format": "kLINEAR", "DataType": "Float"}]},
        {"Name": "last", "Outputs": [{"Name": "output", "Format": "kLINEAR", "DataType": "Float"}]},
    ],
    "I/O Tensors": [
        {"Name": "input", "DataType": "Float"},
        {"Name": "output", "DataType": "Float"},
    ],
}


def test_engine_precision_from_inspector_json():
    io = {"input": "fp32", "output": "fp32"}
    fp16 = summarize_engine_info(json.dumps(ENGINE_10), io)
    assert fp16.precision == "fp16" and fp16.layers == {"fp16": 2}
    verify_engine_precision(fp16, "fp16", "float32", "model_fp16.plan")

    mixed = summarize_engine_info(ENGINE_11_MIXED, io)
    assert mixed.precision == "mixed" and mixed.non_fp16_layers == ["norm1"]
    with pytest.raises(P2PError, match=r"model_fp16\.plan: the built engine is not fp16 .*norm1"):
        verify_engine_precision(mixed, "fp16", "float32", "model_fp16.plan")


def test_engine_without_layer_info_is_not_labelled():
    names_only = summarize_engine_info({"Layers": ["conv1", "conv2"]}, {"input": "fp32"})
    assert names_only.precision == "unknown"
    with pytest.raises(P2PError, match="refusing to label it so"):
        verify_engine_precision(names_only, "fp16", "float32", "m.plan")
    wrong_io = EnginePrecision(io={"input": "fp16"}, layers={"fp16": 3})
    with pytest.raises(P2PError, match="I/O"):
        verify_engine_precision(wrong_io, "fp16", "float32", "m.plan")


def test_engine_sidecar(tiny_onnx_fp16, tmp_path):
    onnx_side = ModelSidecar.read(tiny_onnx_fp16)
    side = engine_sidecar(
        onnx_side,
        precision="fp16",
        profile=BatchProfile(1, 4, 16),
        trt_version="10.3.0",
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
        hardware_compatible=True,
    )
    path = side.write(tmp_path / plan_name("fp16"))
    d = json.loads(path.read_text())
    assert path.name == "model_fp16.plan.json"
    assert d["kind"] == "tensorrt" and d["precision"] == "fp16" and d["batch_profile"] == [1, 4, 16]
    assert d["tensorrt_version"] == "10.3.0" and d["compute_capability"] == "9.0"
    assert d["gpu_name"] == "NVIDIA H100" and d["hardware_compatible"] is True
    assert d["checkpoint_sha256"] == onnx_side.checkpoint_sha256
    assert d["generator"] == onnx_side.generator and d["test_norm"] == "stats"
    assert ModelSidecar.read(tmp_path / "model_fp16.plan").batch_profile == [1, 4, 16]


@pytest.mark.skipif(HAS_TRT, reason="checks the message where tensorrt is absent")
def test_build_without_tensorrt_names_the_extra(tiny_onnx_fp16, tmp_path):
    with pytest.raises(
        MissingDependency, match=r'tensorrt is not installed .*pip install "p2p-deploy\[gpu\]"'
    ):
        build_engine(tiny_onnx_fp16, tmp_path / "m.plan", profile=BatchProfile(1, 2, 4))
    assert not (tmp_path / "m.plan").exists()


@pytest.mark.trt
def test_real_fp16_and_fp32_engines(tiny_onnx_fp16, tiny_onnx_fp32, tmp_path):
    cache = tmp_path / "timing.cache"
    side16 = build_engine(
        tiny_onnx_fp16,
        tmp_path / "model_fp16.plan",
        profile=BatchProfile(1, 2, 4),
        workspace_gib=1.0,
        timing_cache=cache,
    )
    assert side16.precision == "fp16" and side16.batch_profile == [1, 2, 4]
    assert side16.tensorrt_version and side16.compute_capability
    assert cache.is_file() and cache.stat().st_size > 0
    side32 = build_engine(
        tiny_onnx_fp32,
        tmp_path / "model_fp32.plan",
        profile=BatchProfile(1, 2, 4),
        timing_cache=cache,
    )  # reuses the cache written above
    assert side32.precision == "fp32"
    assert (tmp_path / "model_fp16.plan").stat().st_size > 0


@pytest.mark.trt
def test_real_build_shows_parser_errors(tmp_path, tiny_onnx_fp32):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    ModelSidecar.read(tiny_onnx_fp32).write(bad)
    with pytest.raises(P2PError, match=r"bad\.onnx: TensorRT's ONNX parser rejected it: "):
        build_engine(bad, tmp_path / "bad.plan", profile=BatchProfile(1, 1, 1))
    assert not (tmp_path / "bad.plan").exists()


def _fake_trt(builder):
    """A stand-in for the ``tensorrt`` module whose ``Builder`` is ``builder``."""
    return SimpleNamespace(Builder=builder)


@pytest.mark.parametrize(
    "builder",
    [
        lambda _logger: (_ for _ in ()).throw(
            TypeError("pybind11::init(): factory function returned nullptr")
        ),
        lambda _logger: (_ for _ in ()).throw(RuntimeError("CUDA initialization failure")),
        lambda _logger: None,
    ],
)
def test_builder_without_gpu_is_one_line(builder):
    with pytest.raises(NoTensorRTGpu, match="^TensorRT found no usable CUDA GPU"):
        create_builder(_fake_trt(builder), logger=None)
    assert issubclass(NoTensorRTGpu, P2PError)


def test_timing_cache_read_up_front(tmp_path):
    assert read_timing_cache(None) is None
    assert read_timing_cache(tmp_path / "new.cache") == b""  # created after the build
    (tmp_path / "old.cache").write_bytes(b"abc")
    assert read_timing_cache(tmp_path / "old.cache") == b"abc"
    with pytest.raises(P2PError, match=r"dir\.cache: timing cache path is not a file"):
        (tmp_path / "dir.cache").mkdir()
        read_timing_cache(tmp_path / "dir.cache")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_timing_cache_is_one_line(tmp_path):
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"abc")
    cache.chmod(0)
    with pytest.raises(P2PError, match=r"t\.cache: timing cache cannot be read"):
        read_timing_cache(cache)


def test_failing_cache_write_is_a_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not write_timing_cache(blocker / "sub" / "t.cache", b"abc")  # parent is a file
    assert "timing cache not saved" in caplog.text
    assert write_timing_cache(tmp_path / "t.cache", b"abc")
    assert (tmp_path / "t.cache").read_bytes() == b"abc"


def _plan_sidecar(onnx: Path, precision: str) -> ModelSidecar:
    return engine_sidecar(
        ModelSidecar.read(onnx),
        precision=precision,
        profile=BatchProfile(1, 2, 4),
        trt_version="10.3.0",
        gpu_name=None,
        compute_capability=None,
    )


def test_write_plan_sidecar_first_and_no_leftovers(tiny_onnx_fp16, tmp_path):
    plan = tmp_path / "model_fp16.plan"
    write_plan(plan, b"engine-1", _plan_sidecar(tiny_onnx_fp16, "fp16"))
    assert plan.read_bytes() == b"engine-1"
    assert ModelSidecar.read(plan).precision == "fp16"
    assert sorted(p.name for p in tmp_path.iterdir()) == [plan.name, plan.name + ".json"]


def test_failed_plan_write_keeps_the_old_pair(tiny_onnx_fp16, tmp_path):
    """A write that fails (here: the sidecar cannot be serialised) leaves the old plan and
    the old sidecar untouched, and no staging folder."""
    plan = tmp_path / "model_fp16.plan"
    write_plan(plan, b"old", _plan_sidecar(tiny_onnx_fp16, "fp16"))
    old_side = sidecar_for(plan).read_text()
    bad = _plan_sidecar(tiny_onnx_fp16, "fp16")
    bad.extra["unserialisable"] = object()
    with pytest.raises(TypeError):
        write_plan(plan, b"new", bad)
    assert plan.read_bytes() == b"old" and sidecar_for(plan).read_text() == old_side
    assert sorted(p.name for p in tmp_path.iterdir()) == [plan.name, plan.name + ".json"]
