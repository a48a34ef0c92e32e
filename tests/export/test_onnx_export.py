"""ONNX export of tiny generators: interface, sidecar, test-norm modes, fp16 graph, parity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from helpers import make_tiny_generator

from p2p_deploy.errors import P2PError
from p2p_deploy.export.fp16 import inspect_graph_precision, verify_graph_precision
from p2p_deploy.export.onnx_export import export_onnx
from p2p_deploy.export.parity import check_onnx_parity, ort_session, random_images
from p2p_deploy.models.card import read_export_card
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.layout import card_path
from p2p_deploy.models.opening import open_model
from p2p_deploy.models.weights import file_sha256


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_fp32_fixture_interface_and_sidecar(tiny_onnx_fp32, tiny_checkpoint):
    proto = onnx.load(str(tiny_onnx_fp32))
    onnx.checker.check_model(proto, full_check=True)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17

    side = json.loads(card_path(tiny_onnx_fp32).read_text())
    assert side["kind"] == "onnx" and side["precision"] == "fp32" and side["io_dtype"] == "float32"
    assert side["test_norm"] == "stats"
    assert side["input_shape"] == [-1, 3, 32, 32] and side["output_shape"] == [-1, 3, 32, 32]
    assert side["opset"] >= 17
    assert side["checkpoint_sha256"] == file_sha256(tiny_checkpoint)
    assert side["generator"] == open_model(tiny_checkpoint).card.generator.to_dict()


def test_stats_mode_is_per_image_instance_norm(tiny_onnx_fp32):
    ops = _ops(tiny_onnx_fp32)
    assert "InstanceNormalization" in ops and "BatchNormalization" not in ops
    # Three different images in one batch give exactly what they give one by one.
    sess = ort_session(tiny_onnx_fp32)
    x = random_images(3, 3, 32, seed=5)
    together = sess.run(None, {"input": x})[0]
    apart = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(3)])
    assert np.abs(together - apart).max() < 1e-5


@pytest.mark.slow
def test_fp32_parity_both_modes_and_modes_differ(tiny_onnx_fp32, tiny_checkpoint, tmp_path):
    model = open_model(tiny_checkpoint).generator()
    stats = check_onnx_parity(tiny_onnx_fp32, prepare_generator(model, "stats"))
    assert stats.passed and stats.max_abs_err <= 1e-4
    assert sorted({f.batch for f in stats.figures}) == [1, 3]

    running_path = tmp_path / "running.onnx"
    side = export_onnx(model, running_path, test_norm="running")
    assert side.test_norm == "running" and "InstanceNormalization" not in _ops(running_path)
    running = check_onnx_parity(running_path, prepare_generator(model, "running"))
    assert running.passed

    # The two modes compute different images: each ONNX fails against the other mode's torch.
    crossed = check_onnx_parity(
        running_path, prepare_generator(model, "stats"), raise_on_failure=False
    )
    assert not crossed.passed and crossed.max_abs_err > 1e-2
    with pytest.raises(P2PError, match=r"running\.onnx: parity check failed: .*max abs err"):
        check_onnx_parity(running_path, prepare_generator(model, "stats"))


def test_batch_three_catches_statistics_mixed_across_frames(tiny_onnx_fp32, tiny_checkpoint):
    """A reference that shares batch statistics (BN in train mode) agrees at batch 1 only."""
    mixing = prepare_generator(open_model(tiny_checkpoint).generator(), "running")
    for m in mixing.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
            m.momentum = 0.0  # keep the running stats as they are
    report = check_onnx_parity(tiny_onnx_fp32, mixing, raise_on_failure=False)
    by_batch = {f.batch: f.max_abs_err for f in report.figures}
    assert by_batch[1] < 1e-4 and by_batch[3] > 1e-2 and not report.passed


def test_fp16_graph_precision_and_parity(tiny_onnx_fp16, tiny_checkpoint):
    proto = onnx.load(str(tiny_onnx_fp16))
    floats = {i.data_type for i in proto.graph.initializer if i.data_type in (1, 10)}
    assert floats == {onnx.TensorProto.FLOAT16}
    casts = [n for n in proto.graph.node if n.op_type == "Cast"]
    assert (
        len(casts) == 2
        and proto.graph.node[0].op_type == "Cast"
        and proto.graph.node[-1].op_type == "Cast"
    )
    gp = inspect_graph_precision(proto)
    assert gp.precision == "fp16" and gp.input_dtype == gp.output_dtype == "float32"
    assert set(gp.compute) == {"float16"}
    side = read_export_card(tiny_onnx_fp16)
    assert side.precision == "fp16" and side.io_dtype == "float32"

    report = check_onnx_parity(
        tiny_onnx_fp16, prepare_generator(open_model(tiny_checkpoint).generator(), "stats")
    )
    assert report.metric == "psnr_db" and report.min_psnr_db >= 40.0
    assert report.max_abs_err > 0  # fp16 rounding is really there: not the fp32 graph


@pytest.mark.slow
def test_fp16_io_has_no_casts(tmp_path):
    model = make_tiny_generator(seed=3)
    path = tmp_path / "io16.onnx"
    side = export_onnx(model, path, precision="fp16", io_dtype="float16")
    gp = inspect_graph_precision(onnx.load(str(path)))
    assert side.io_dtype == "float16" and gp.input_dtype == "float16" and gp.casts == []
    assert check_onnx_parity(path, prepare_generator(model, "stats")).passed


@pytest.mark.slow
def test_instance_norm_generator(tiny_instance_checkpoint, tmp_path):
    loaded = open_model(tiny_instance_checkpoint)
    path = tmp_path / "inst.onnx"
    side = export_onnx(loaded.generator(), path)
    assert side.generator.norm == "instance" and side.test_norm == "running"
    assert "InstanceNormalization" in _ops(path)
    assert check_onnx_parity(path, prepare_generator(loaded.generator(), "running")).passed


def test_verify_graph_precision_refuses_a_fp32_graph_labelled_fp16(tiny_onnx_fp32):
    gp = inspect_graph_precision(onnx.load(str(tiny_onnx_fp32)))
    with pytest.raises(P2PError, match=r"model\.onnx: the ONNX graph is not fp16: weights"):
        verify_graph_precision(gp, "fp16", "float32", "model.onnx")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opset": 16}, "opset 16 is too old"),
        ({"io_dtype": "float16"}, "fp16 input/output needs an fp16 export"),
        ({"precision": "int8"}, "precision must be one of fp32, fp16"),
        ({"test_norm": "batch"}, "test norm must be one of stats, running"),
    ],
)
def test_bad_arguments_leave_no_file(tmp_path, kwargs, message):
    path = tmp_path / "bad.onnx"
    with pytest.raises(P2PError, match=message):
        export_onnx(make_tiny_generator(), path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_interface_check_refuses_a_static_batch_graph():
    from onnx import TensorProto, helper

    from p2p_deploy.export.onnx_export import _check_interface

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(
        P2PError, match=r"m\.onnx: input has shape \[1, 3, 32, 32\], expected \[batch"
    ):
        _check_interface(proto, 32, (3, 3), "m.onnx")


def test_unloadable_onnx_is_one_line(tiny_onnx_fp32, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(tiny_onnx_fp32.read_bytes()[:1000])  # truncated
    read_export_card(tiny_onnx_fp32).write(bad)
    with pytest.raises(P2PError, match=r"broken\.onnx: ONNX Runtime cannot load it") as info:
        check_onnx_parity(bad, prepare_generator(make_tiny_generator(), "stats"))
    assert "\n" not in str(info.value)


class _NanOnBatch(torch.nn.Module):
    """The reference, except that it returns NaN for every batch of ``bad_batch`` images."""

    def __init__(self, inner: torch.nn.Module, bad_batch: int) -> None:
        super().__init__()
        self.inner, self.bad_batch = inner, bad_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return torch.full_like(y, float("nan")) if x.shape[0] == self.bad_batch else y


@pytest.mark.parametrize("bad_batch", [1, 3])
def test_nan_output_fails_parity(tiny_onnx_fp32, tiny_checkpoint, bad_batch):
    """A NaN anywhere fails (Python's max/min would skip it depending on its position)."""
    ref = prepare_generator(open_model(tiny_checkpoint).generator(), "stats")
    report = check_onnx_parity(tiny_onnx_fp32, _NanOnBatch(ref, bad_batch), raise_on_failure=False)
    assert not report.passed and report.non_finite
    assert np.isnan(report.max_abs_err) and np.isnan(report.min_psnr_db)
    d = report.to_dict()
    assert d["passed"] is False and d["max_abs_err"] is None
    json.dumps(d, allow_nan=False)  # valid JSON
    with pytest.raises(P2PError, match="parity check failed: .*non-finite"):
        check_onnx_parity(tiny_onnx_fp32, _NanOnBatch(ref, bad_batch))
