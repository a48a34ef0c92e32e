"""The Exporter's one wrapper: timings for every step run, one note for optional plans TensorRT
cannot build, one line for a required one, nothing moved in before its checks pass, and an
immutable result. TensorRT's builder is replaced by stand-ins (it cannot run here)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from p2p_deploy.errors import P2PError
from p2p_deploy.export import exporter as exporter_module
from p2p_deploy.export import parity, tensorrt_build
from p2p_deploy.export.command import run_export
from p2p_deploy.export.exporter import Exporter, Made
from p2p_deploy.export.options import ExportOptions
from p2p_deploy.export.tensorrt_build import BatchProfile, NoTensorRTGpu
from p2p_deploy.models.card import read_export_card


def _no_gpu(calls: list[str]):
    def build_engine(onnx_path, plan_path, **_kw):
        calls.append(Path(plan_path).name)
        raise NoTensorRTGpu("TensorRT found no usable CUDA GPU (stand-in)")

    return build_engine


def _fake_build(calls: list[str]):
    """Writes a plan (any bytes) and its card as the real builder does, without TensorRT."""

    def build_engine(onnx_path, plan_path, *, profile: BatchProfile, **_kw):
        calls.append(Path(plan_path).name)
        card = tensorrt_build.engine_card(
            read_export_card(onnx_path),
            precision=read_export_card(onnx_path).precision,
            profile=profile,
            trt_version="10.3.0",
            gpu_name=None,
            compute_capability=None,
        )
        return tensorrt_build.write_plan(plan_path, b"plan", card)

    return build_engine


@pytest.mark.slow
def test_optional_plans_that_cannot_be_built_give_one_note(tiny_checkpoint, tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(tensorrt_build, "build_engine", _no_gpu(calls))
    monkeypatch.setattr(Exporter, "export_int8", lambda self: Made())  # test_int8.py covers it
    from p2p_deploy.export import calibration

    monkeypatch.setattr(calibration, "check_calibration_source", lambda *_a, **_k: None)
    opts = ExportOptions(tiny_checkpoint, tmp_path / "o", fp16=True, int8=True, skip_parity=True)
    result = run_export(opts)
    # fp16 and int8 plans are both optional: TensorRT is tried once, and said once.
    assert calls == ["model_fp16.plan"]
    assert len(result.notes) == 1
    assert result.notes[0].startswith("TensorRT engine skipped: TensorRT found no usable CUDA GPU")
    assert set(result.seconds) == {"load", "onnx", "int8"}  # skipped plans took no step
    assert [p.name for p in result.models] == ["model.onnx", "model_fp16.onnx"]


@pytest.mark.slow
def test_a_required_plan_fails_in_one_line_after_an_optional_skip(
    tiny_checkpoint, tmp_path, monkeypatch
):
    calls: list[str] = []
    monkeypatch.setattr(tensorrt_build, "build_engine", _no_gpu(calls))
    monkeypatch.setattr(exporter_module, "available", lambda _name: True)
    monkeypatch.setattr(exporter_module, "check_can_verify_engines", lambda: None)  # buffers
    out = tmp_path / "o"
    opts = ExportOptions(tiny_checkpoint, out, fp16=True, fp32_engine=True, skip_parity=True)
    with pytest.raises(NoTensorRTGpu) as e:
        run_export(opts)
    message = str(e.value)
    assert message.startswith("model_fp32.plan was asked for, but TensorRT found no usable CUDA")
    assert 'pip install "p2p-deploy[gpu]"' in message and "\n" not in message
    assert calls == ["model_fp16.plan"]  # the answer was kept, not asked again
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".onnx") == [
        "model.onnx",
        "model_fp16.onnx",
    ]


@pytest.mark.slow
def test_every_step_run_is_timed_and_the_result_is_complete(tiny_checkpoint, tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(tensorrt_build, "build_engine", _fake_build(calls))
    steps: list[str] = []
    out, repo = tmp_path / "o", tmp_path / "triton"
    opts = ExportOptions(tiny_checkpoint, out, fp16=True, batch="1:2:4", triton=repo)
    result = run_export(opts, on_step=steps.append)
    assert calls == ["model_fp16.plan"]
    assert set(result.seconds) == {"load", "onnx", "engine_fp16", "triton"}
    assert all(s >= 0 for s in result.seconds.values())
    assert steps[0] == "loading checkpoint" and "parity check of model_fp16.onnx" in steps
    assert steps[-1] == "writing Triton repository for model_fp16.plan"
    names = ["model.onnx", "model_fp16.onnx", "model_fp16.plan"]
    assert [p.name for p in result.models] == names
    assert [p.name for p in result.files] == [
        *(f for n in names for f in (n, n + ".json")),
        "config.pbtxt",
    ]
    assert result.triton == repo / "p2p_generator" / "config.pbtxt" == result.files[-1]
    assert [r.precision for r in result.parity] == ["fp32", "fp16"] and not result.notes
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in result.files[:-1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.notes = ("x",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.seconds["load"] = 0.0  # type: ignore[index]


@pytest.mark.slow
def test_a_failed_check_moves_nothing_in_and_keeps_the_earlier_export(
    tiny_checkpoint, tmp_path, monkeypatch
):
    out = tmp_path / "o"
    run_export(ExportOptions(tiny_checkpoint, out, skip_parity=True))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = parity.check_onnx_parity

    def fp16_fails(path, reference, **kw):
        if read_export_card(path).precision == "fp16":
            raise P2PError(f"{path.name}: parity check failed: PSNR 12.0 dB (>= 40 dB)")
        return real(path, reference, **kw)

    monkeypatch.setattr(parity, "check_onnx_parity", fp16_fails)
    with pytest.raises(P2PError, match="model_fp16.onnx: parity check failed"):
        run_export(ExportOptions(tiny_checkpoint, out, fp16=True, engine=False))
    # model.onnx passed, but it is not moved in while its sibling failed: the earlier export
    # stays whole, and no staging folder is left.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow
def test_no_cuda_buffers_is_said_before_any_export(tiny_checkpoint, tmp_path, monkeypatch):
    """TensorRT present but nothing to hand an engine CUDA buffers for its parity run (CPU
    torch, no pycuda: this machine): an engine that was asked for fails before anything is
    read or written, with that reason's own fix; optional plans are one note, none built."""
    from p2p_deploy.runners.trt_memory import torch_cuda_available

    if torch_cuda_available() or importlib.util.find_spec("pycuda") is not None:
        pytest.skip("this machine has CUDA buffers")
    real = exporter_module.available
    monkeypatch.setattr(
        exporter_module, "available", lambda m: m in ("tensorrt", "polygraphy") or real(m)
    )
    calls: list[str] = []
    monkeypatch.setattr(tensorrt_build, "build_engine", _no_gpu(calls))
    out = tmp_path / "asked"
    with pytest.raises(P2PError) as e:
        Exporter(ExportOptions(tiny_checkpoint, out, engine=True))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("model_fp16.plan was asked for, but no CUDA buffers")
    assert "p2p-deploy[pycuda]" in msg and "[gpu]" not in msg and not out.exists()
    result = run_export(ExportOptions(tiny_checkpoint, tmp_path / "optional", fp16=True))
    assert calls == []  # not even tried
    skipped = [n for n in result.notes if "skipped" in n]
    assert len(skipped) == 1 and skipped[0].startswith("TensorRT engine skipped: no CUDA buffers")
    assert not list((tmp_path / "optional").glob("*.plan"))


def test_each_plan_is_checked_against_its_reference(
    tiny_checkpoint, tiny_onnx_fp32, tiny_onnx_fp16, tiny_onnx_int8, tmp_path, monkeypatch
):
    """fp16/fp32 plans run against model.onnx; the INT8 plan against model_int8.onnx, the graph
    it was built from (its quality against fp32 is that graph's gate: export/trt_parity.py)."""
    import shutil

    from p2p_deploy.models.layout import card_path

    out = tmp_path / "o"
    out.mkdir()
    for src, name in (
        (tiny_onnx_fp32, "model.onnx"),
        (tiny_onnx_fp16, "model_fp16.onnx"),
        (tiny_onnx_int8, "model_int8.onnx"),
    ):
        shutil.copy(src, out / name)
        shutil.copy(card_path(src), card_path(out / name))
    references: dict[str, str] = {}
    fake = _fake_build([])

    def build_engine(onnx_path, plan_path, *, reference_onnx, **kw):
        references[Path(plan_path).name] = Path(reference_onnx).name
        return fake(onnx_path, plan_path, **kw)

    monkeypatch.setattr(tensorrt_build, "build_engine", build_engine)
    ex = Exporter(ExportOptions(tiny_checkpoint, out, overwrite=True, skip_parity=True))
    ex._notes = []
    for precision in ("fp16", "int8"):
        assert ex.export_engine(precision).models == (out / f"model_{precision}.plan",)
    assert references == {"model_fp16.plan": "model.onnx", "model_int8.plan": "model_int8.onnx"}
    assert ex._notes == []
