"""INT8 export on tiny generators: the QDQ graph read node by node, the quality gate failing on
an absurd calibration, the calibration sources, the sidecar labels, the int8 engine check."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from helpers import make_tiny_generator, save_checkpoint
from onnx import numpy_helper

from p2p_deploy.cli import main
from p2p_deploy.errors import DataError, P2PError
from p2p_deploy.export.calibration import folder_images, split_counts
from p2p_deploy.export.command import run_export
from p2p_deploy.export.int8 import inspect_int8_graph, quality_gate, quantize_int8
from p2p_deploy.export.int8_engine import (
    NetworkConv,
    int8_inspector_verdict,
    int8_network_verdict,
    read_int8_inspector,
)
from p2p_deploy.export.options import ExportOptions
from p2p_deploy.export.parity import random_images


@pytest.fixture(scope="module")
def tiny_int8(tiny_onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "model_int8.onnx"
    quantize_int8(tiny_onnx_fp32, out, random_images(8, 3, 32, seed=1))
    return out


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generator whose metadata says it was trained on the synthetic facades."""
    path = tmp_path_factory.mktemp("ckpt_syn") / "generator.safetensors"
    meta = {"direction": "BtoA", "data": "synthetic", "seed": 3}
    return save_checkpoint(make_tiny_generator(seed=2), path, meta)


def test_qdq_graph_quantizes_every_conv_and_conv_transpose(tiny_int8: Path) -> None:
    g = onnx.load(str(tiny_int8)).graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    seen = {"Conv": 0, "ConvTranspose": 0}
    for node in g.node:
        if node.op_type not in seen:
            continue
        seen[node.op_type] += 1
        x_dq, w_dq = producer[node.input[0]], producer[node.input[1]]
        assert x_dq.op_type == w_dq.op_type == "DequantizeLinear", node.name
        # weights: stored as int8, one scale per output channel (axis 0 / 1), zero point 0
        w, scale = inits[w_dq.input[0]], inits[w_dq.input[1]]
        axis = 0 if node.op_type == "Conv" else 1
        assert w.dtype == np.int8 and scale.shape == (w.shape[axis],)
        assert {a.name: a.i for a in w_dq.attribute}.get("axis", 1) == axis
        assert not inits[w_dq.input[2]].any()
        # activations: a QuantizeLinear to int8 with zero point 0 (symmetric, signed)
        q = producer[x_dq.input[0]]
        assert q.op_type == "QuantizeLinear"
        zp = inits[q.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    # the tiny U-Net has 5 downsampling convs and 5 transposed convs
    assert seen == {"Conv": 5, "ConvTranspose": 5}
    # norms, activations and the output stay float
    ops = {n.op_type for n in g.node}
    assert {"InstanceNormalization", "LeakyRelu", "Relu", "Tanh", "Concat"} <= ops
    assert producer[g.output[0].name].op_type == "Tanh"
    assert g.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    info = inspect_int8_graph(onnx.load(str(tiny_int8)))
    assert info.ok and info.ops == {"Conv": [5, 5], "ConvTranspose": [5, 5]}


def test_graph_check_refuses_an_unquantized_graph(tiny_onnx_fp32: Path) -> None:
    info = inspect_int8_graph(onnx.load(str(tiny_onnx_fp32)))
    assert not info.ok
    assert info.ops == {"Conv": [0, 5], "ConvTranspose": [0, 5]}
    assert any("ConvTranspose" in p and "not quantized" in p for p in info.problems)


def test_gate_passes_on_good_and_fails_on_absurd_calibration(
    tiny_onnx_fp32: Path, tiny_int8: Path, tmp_path: Path
) -> None:
    holdout = random_images(3, 3, 32, seed=50)
    good = quality_gate(tiny_int8, tiny_onnx_fp32, holdout)
    assert good.passed and good.psnr_db >= 35 and good.images == 3
    # calibrated on images 500x dimmer than real ones: every real activation saturates
    bad_model = tmp_path / "bad.onnx"
    quantize_int8(tiny_onnx_fp32, bad_model, random_images(8, 3, 32, seed=1) * 0.002)
    bad = quality_gate(bad_model, tiny_onnx_fp32, holdout)
    assert not bad.passed and bad.psnr_db < 35


def _write_images(folder: Path, names: list[str], images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, images, strict=True):
        bgr = ((img.transpose(1, 2, 0)[..., ::-1] + 1) * 127.5).round().astype(np.uint8)
        assert cv2.imwrite(str(folder / name), bgr)


@pytest.mark.slow
def test_export_fails_the_gate_and_writes_nothing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    # sorted first: 8 almost uniform gray images (the calibration set, an absurd one);
    # sorted last: 2 real-looking images (held out for the gate)
    gray = np.random.default_rng(0).uniform(-0.004, 0.004, (8, 3, 32, 32)).astype(np.float32)
    _write_images(calib, [f"a_{i}.png" for i in range(8)], gray)
    _write_images(calib, ["z_0.png", "z_1.png"], random_images(2, 3, 32, seed=9))
    out = tmp_path / "out"
    with pytest.raises(P2PError, match=r"INT8 quality gate failed: PSNR vs fp32 \d+\.\d dB") as e:
        run_export(ExportOptions(tiny_checkpoint, out, calib=calib, calib_count=8))
    assert "nothing was written" in str(e.value) and "\n" not in str(e.value)
    assert "on 8 images from" in str(e.value)
    # (percentile calibration cannot bin constant images: the export fell back to min/max)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.json"]


@pytest.mark.slow
def test_cli_int8_on_synthetic_checkpoint_sidecar_labels(
    synthetic_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["export", str(synthetic_checkpoint), "--out", str(out), "--int8",
                 "--calib-count", "6"])  # fmt: skip
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "int8    PSNR vs fp32" in stdout and "synthetic facades label maps" in stdout
    assert "wrote   " + str(out / "model_int8.onnx") in stdout
    assert "pre-processing" not in stdout + err  # the quantizer's advice is not the user's
    fp32 = json.loads((out / "model.onnx.json").read_text())
    int8 = json.loads((out / "model_int8.onnx.json").read_text())
    assert fp32["precision"] == "fp32" and int8["precision"] == "int8"
    assert int8["io_dtype"] == "float32" and int8["test_norm"] == fp32["test_norm"]
    cal, gate = int8["extra"]["calibration"], int8["extra"]["quality_gate"]
    assert cal["method"] == "percentile" and cal["images"] == 6 and cal["held_out_images"] == 8
    assert cal["source"] == "synthetic facades label maps (seed 3, BtoA)"
    assert gate["passed"] and gate["psnr_db"] >= 35 and gate["threshold_db"] == 35
    assert int8["extra"]["quantizer"].startswith("onnxruntime.quantization.quantize_static")
    assert int8["extra"]["int8_graph"]["ops"] == {"Conv": [5, 5], "ConvTranspose": [5, 5]}
    names = sorted(p.name for p in out.iterdir())  # no staging folder left behind
    assert names == ["model.onnx", "model.onnx.json", "model_int8.onnx", "model_int8.onnx.json"]


@pytest.mark.slow
def test_checkpoint_without_data_kind_needs_calib(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--int8"])
    _out, err = capsys.readouterr()
    assert code != 0
    assert "does not say what data it was trained on; give --calib DIR" in err
    assert "Traceback" not in err


def test_calibration_folder_split_and_errors(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    _write_images(folder, [f"{i:02d}.png" for i in range(12)], random_images(12, 3, 40, seed=2))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    cs = folder_images(folder, 32, calib_count=20)
    # 12 readable: 2 held out (a fifth), 10 to calibrate on; 2 files left out
    assert cs.calib.shape == (10, 3, 32, 32) and cs.holdout.shape == (2, 3, 32, 32)
    assert cs.skipped == 2 and cs.calib.dtype == np.float32
    assert -1 <= cs.calib.min() and cs.calib.max() <= 1
    assert split_counts(100, 32) == (32, 8)
    with pytest.raises(DataError, match="needs at least 2 images"):
        split_counts(1, 32)
    one = tmp_path / "one"
    _write_images(one, ["a.png"], random_images(1, 3, 32, seed=0))
    with pytest.raises(DataError, match=r"one: --calib holds no usable images \(1 image file"):
        folder_images(one, 32)
    with pytest.raises(P2PError, match="must be a folder"):
        run_export(ExportOptions(Path("unused"), tmp_path / "o", calib=tmp_path / "no"))


# TensorRT's engine inspector (10.x shape): the int8 engine's convolutions read int8.
ENGINE_INT8 = {
    "Layers": [
        {
            "Name": "conv1",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Name": "x_q", "Format/Datatype": "Channel major INT8 format"}],
            "Outputs": [{"Name": "c1", "Format/Datatype": "Row major linear FP32 format"}],
        },
        {
            "Name": "norm1",
            "LayerType": "Normalization",
            "Inputs": [{"Name": "c1", "Format/Datatype": "Row major linear FP32 format"}],
            "Outputs": [{"Name": "n1", "Format/Datatype": "Channel major INT8 format"}],
        },
        {
            "Name": "up1",
            "LayerType": "CaskDeconvolution",
            "Inputs": [{"Name": "n1", "Format/Datatype": "Channel major INT8 format"}],
            "Outputs": [{"Name": "output", "Format/Datatype": "Row major linear FP32 format"}],
        },
    ]
}


def test_int8_engine_evidence_network_and_inspector() -> None:
    dq = "LayerType.DEQUANTIZE"
    good = [NetworkConv("conv1", "LayerType.CONVOLUTION", (dq, dq)),
            NetworkConv("up1", "LayerType.DECONVOLUTION", (dq, dq))]  # fmt: skip
    assert int8_network_verdict(good, "m.onnx")["compute_layers"] == {"int8": 2}
    float_weights = [
        *good,
        NetworkConv("up2", "LayerType.DECONVOLUTION", (dq, "LayerType.CONSTANT")),
    ]
    with pytest.raises(P2PError, match=r"1 of 3 convolution layers are not fed by Dequant.*up2"):
        int8_network_verdict(float_weights, "m.onnx")
    rec = read_int8_inspector(json.dumps(ENGINE_INT8))
    assert rec.compute == {"int8": 2} and not rec.contrary
    int8_inspector_verdict(rec, "model_int8.plan")
    fallback = json.loads(json.dumps(ENGINE_INT8))
    fallback["Layers"][2]["Inputs"][0]["Format/Datatype"] = "Row major linear FP32 format"
    rec = read_int8_inspector(fallback)
    assert rec.compute == {"int8": 1, "fp32": 1} and rec.contrary == ["up1"]
    with pytest.raises(P2PError, match=r"model_int8\.plan: .* reading float, not int8 .*up1"):
        int8_inspector_verdict(rec, "model_int8.plan")
    # no dtypes shown (no context attached): recorded, not refused
    na = json.loads(json.dumps(ENGINE_INT8))
    for layer in na["Layers"]:
        for t in layer["Inputs"]:
            t["Format/Datatype"] = "N/A due to dynamic shapes"
    rec = read_int8_inspector(na)
    assert rec.compute == {"n/a": 2}
    int8_inspector_verdict(rec, "model_int8.plan")


@pytest.mark.trt
def test_real_int8_engine(synthetic_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_export(
        ExportOptions(synthetic_checkpoint, out, batch="1:2:4", int8=True, calib_count=8),
        synthetic=_synthetic_input(),
    )
    side = json.loads((out / "model_int8.plan.json").read_text())
    assert side["precision"] == "int8" and side["extra"]["quality_gate"]["passed"]
    assert out / "model_int8.plan" in result.models


def _synthetic_input():
    from p2p_deploy.cli.calibration import synthetic_input

    return synthetic_input


# -- biases stay float: TensorRT cannot dequantize INT32 ----------------------------------


def _conv_convtranspose_with_bias(path: Path) -> Path:
    """input (N, 3, 8, 8) -> Conv 4x4/2 + bias -> Relu -> ConvTranspose 4x4/2 + bias -> Tanh."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.2, shape).astype(np.float32), name)

    attrs = {"kernel_shape": [4, 4], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w1", "b1"], ["c"], name="conv", **attrs),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("ConvTranspose", ["r", "w2", "b2"], ["t"], name="tconv", **attrs),
            helper.make_node("Tanh", ["t"], ["output"], name="tanh"),
        ],
        "conv_convtranspose_bias",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [init("w1", (4, 3, 4, 4)), init("b1", (4,)), init("w2", (4, 3, 4, 4)), init("b2", (3,))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _dequantize_inputs(model: onnx.ModelProto) -> dict[str, str]:
    """Each DequantizeLinear's input tensor -> its element type, read from the graph."""
    g = model.graph
    inits = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    out = {}
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        x = n.input[0]
        if x in inits:
            out[x] = inits[x]
        else:  # a QuantizeLinear's output: the type of its zero point
            q = producer[x]
            out[x] = inits[q.input[2]]
    return out


def test_biases_stay_float_no_int32_dequantize(tmp_path: Path) -> None:
    """Quantized as the export does (quantize_int8): every DequantizeLinear reads int8 and the
    Conv / ConvTranspose biases are float initializers feeding the op directly. The quantizer's
    default (QuantizeBias on) writes INT32 biases behind DequantizeLinear, which TensorRT's
    IDequantizeLayer refuses; the graph check names that graph's problem."""
    fp32 = _conv_convtranspose_with_bias(tmp_path / "model.onnx")
    calib = np.random.default_rng(1).uniform(-1, 1, (8, 3, 8, 8)).astype(np.float32)
    info = quantize_int8(fp32, tmp_path / "model_int8.onnx", calib)
    model = onnx.load(str(tmp_path / "model_int8.onnx"))
    dq = _dequantize_inputs(model)
    assert dq and set(dq.values()) == {"int8"}, dq
    assert "int32" not in info.dequantize_dtypes and info.float_biases == 2
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            bias = inits[node.input[2]]  # an initializer itself, no DequantizeLinear between
            assert bias.data_type == onnx.TensorProto.FLOAT, node.name

    # What the quantizer does by default, and the check that refuses it.
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x[None]}

    default = tmp_path / "default_int8.onnx"
    quantize_static(
        str(fp32), str(default), Reader(), quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "ConvTranspose"], per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    bad = inspect_int8_graph(onnx.load(str(default)))
    assert bad.dequantize_dtypes.get("int32") == 2
    assert any("int32" in p for p in bad.problems), bad.problems


@pytest.mark.slow
def test_exported_generator_with_biases_reads_int8_only(tmp_path: Path) -> None:
    """The export's own path on an instance-norm generator, where every Conv and
    ConvTranspose carries a (non-zero: a zero one is dropped by the ONNX export) bias: all ten
    stay float, every DequantizeLinear reads int8."""
    import torch

    from p2p_deploy.export.onnx_export import export_onnx
    from p2p_deploy.models.card import ModelCard

    model = make_tiny_generator(seed=3, norm="instance")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.bias.normal_(0.0, 0.05)
    fp32 = tmp_path / "model.onnx"
    card = ModelCard(generator=model.cfg, test_norm="stats")
    export_onnx(model, fp32, precision="fp32", card=card)
    info = quantize_int8(fp32, tmp_path / "model_int8.onnx", random_images(8, 3, 32, seed=4))
    assert info.ops == {"Conv": [5, 5], "ConvTranspose": [5, 5]}
    assert set(info.dequantize_dtypes) == {"int8"} and info.float_biases == 10
    assert info.ok, info.problems


def test_int8_plan_failure_is_a_note_beside_the_kept_onnx(
    tiny_onnx_int8: Path, tiny_onnx_fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TensorRT that rejects the INT8 graph (or whose engine fails its checks) leaves no plan,
    keeps model_int8.onnx with the reason in its card, and returns a one-line note; no TensorRT
    or no GPU stay the exporter's 'skipped' errors."""
    import shutil

    from p2p_deploy.export import tensorrt_build
    from p2p_deploy.export.int8_engine import build_int8_plan
    from p2p_deploy.export.tensorrt_build import NoTensorRTGpu
    from p2p_deploy.models.card import read_export_card
    from p2p_deploy.models.layout import card_path

    onnx_path = tmp_path / "model_int8.onnx"
    shutil.copy(tiny_onnx_int8, onnx_path)
    shutil.copy(card_path(tiny_onnx_int8), card_path(onnx_path))
    plan = tmp_path / "model_int8.plan"

    def rejects(*args, **kwargs):
        raise P2PError(f"{onnx_path}: TensorRT's ONNX parser rejected it: DequantizeLinear.")

    monkeypatch.setattr(tensorrt_build, "build_engine", rejects)
    side, note = build_int8_plan(onnx_path, plan, reference_onnx=tiny_onnx_fp32)
    assert side is None and "\n" not in note
    assert note.startswith("model_int8.plan not built (") and "model_int8.onnx is kept" in note
    assert not plan.exists() and onnx_path.is_file()
    card = read_export_card(onnx_path)
    assert card.precision == "int8" and card.extra["quality_gate"]["passed"]
    assert card.extra["tensorrt_engine"]["built"] is False
    assert "parser rejected it" in card.extra["tensorrt_engine"]["reason"]

    def no_gpu(*args, **kwargs):
        raise NoTensorRTGpu("TensorRT found no usable CUDA GPU")

    monkeypatch.setattr(tensorrt_build, "build_engine", no_gpu)
    with pytest.raises(NoTensorRTGpu):
        build_int8_plan(onnx_path, plan, reference_onnx=tiny_onnx_fp32)
