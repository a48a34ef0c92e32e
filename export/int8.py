"""INT8: the fp32 ONNX -> a QDQ ONNX (``model_int8.onnx``), its graph checked, its quality gated.

Quantizer: ONNX Runtime's ``quantize_static`` in QDQ format (QuantizeLinear/DequantizeLinear
pairs around each quantized op, the standard form that TensorRT's explicit quantization and
OpenVINO's CPU plugin both read). Settings, and why:

* only ``Conv`` and ``ConvTranspose`` are quantized: they hold all the arithmetic; the norms,
  activations, ``Concat`` and the ``Tanh`` output stay float (so does the graph I/O);
* weights per output channel (axis 0 for Conv, 1 for ConvTranspose), symmetric int8, zero
  point 0; activations symmetric signed int8 (``ActivationSymmetric``): zero point 0 is what
  TensorRT requires and what VNNI/AMX kernels run fastest;
* biases stay float (``QuantizeBias: False``). By default the quantizer stores every
  Conv/ConvTranspose bias as an INT32 initializer read through a DequantizeLinear, and
  TensorRT's IDequantizeLayer takes int8, fp8, int4 and fp4 only ("IDequantizeLayer supports
  tensorrt.int8, tensorrt.float8, tensorrt.int4 and tensorrt.fp4 precision", the 10.13
  bindings' docstring; onnx/onnx-tensorrt#850, microsoft/onnxruntime#14229): the plan would
  not build. A float bias is what TensorRT fuses into the int8 convolution itself, and
  OpenVINO does the same. The graph check refuses any DequantizeLinear reading another type;
* calibration by percentile (99.999th of each activation's histogram over the calibration
  images): on the full-size generator it beat min/max and entropy on held-out images (README,
  INT8 section: worst held-out image 40.7 dB against 40.0 and 40.0), clipping the rare
  outliers that would otherwise stretch the int8 range.

The gate runs the QDQ graph in ONNX Runtime (the reference executor of the QDQ format) against
the fp32 ONNX on held-out images and refuses the model below :data:`MIN_PSNR_DB`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from p2p_deploy.deps import require
from p2p_deploy.errors import P2PError
from p2p_deploy.imaging import psnr, psnr_from_mse

log = logging.getLogger(__name__)

MIN_PSNR_DB = 35.0
QUANTIZED_OPS = ("Conv", "ConvTranspose")
CALIB_METHODS = ("minmax", "percentile", "entropy")
DEFAULT_METHOD = "percentile"
# Which weight axis holds the output channels: Conv (O, I, kh, kw), ConvTranspose (I, O, kh, kw).
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1}
_INT8 = onnx.TensorProto.INT8


# --- reading the graph -------------------------------------------------------------------


@dataclass
class Int8Graph:
    """What a QDQ graph quantizes, read from the graph itself.

    Attributes:
        ops: per quantized op type, ``[quantized, total]`` node counts.
        weights_per_channel: quantized weights whose scale has one value per output channel.
        weights_per_tensor: quantized weights with one scale (should be 0).
        weight_dtypes / activation_dtypes: element types of the weights' and the activations'
            quantized tensors (``int8`` expected).
        nonzero_zero_points: QuantizeLinear/DequantizeLinear nodes with a zero point != 0
            (asymmetric quantization; should be 0).
        dequantize_dtypes: element types every DequantizeLinear reads (``int8`` only: TensorRT
            dequantizes int8/fp8/int4/fp4, never the INT32 biases a default quantizer writes).
        float_biases: Conv/ConvTranspose biases kept float (fused by TensorRT and OpenVINO).
        float_ops: op types that run on float tensors (norms, activations, Concat...).
        output_op: the op producing the graph output (float, e.g. ``Tanh``).
        problems: sentences for everything that makes it not the INT8 graph wanted.
    """

    ops: dict[str, list[int]] = field(default_factory=dict)
    weights_per_channel: int = 0
    weights_per_tensor: int = 0
    weight_dtypes: dict[str, int] = field(default_factory=dict)
    activation_dtypes: dict[str, int] = field(default_factory=dict)
    nonzero_zero_points: int = 0
    dequantize_dtypes: dict[str, int] = field(default_factory=dict)
    float_biases: int = 0
    float_ops: list[str] = field(default_factory=list)
    output_op: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("problems")
        return d


def _const_arrays(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    arrays[n.output[0]] = onnx.numpy_helper.to_array(a.t)
    return arrays


def _dtype(elem: int) -> str:
    return onnx.helper.tensor_dtype_to_np_dtype(elem).name


def _quantized_dtype(
    name: str, consts: dict[str, np.ndarray], producer: dict[str, onnx.NodeProto]
) -> str:
    """Element type of the tensor ``name`` that a DequantizeLinear reads: a constant's own, or
    what the QuantizeLinear producing it writes (its ``output_dtype`` attribute, else its zero
    point's type, else ONNX's default uint8)."""
    if name in consts:
        return consts[name].dtype.name
    q = producer.get(name)
    if q is None or q.op_type != "QuantizeLinear":
        return "unknown"
    out_dtype = next((a.i for a in q.attribute if a.name == "output_dtype"), 0)
    if out_dtype:
        return _dtype(out_dtype)
    if len(q.input) > 2 and q.input[2] in consts:
        return consts[q.input[2]].dtype.name
    return "uint8"


def inspect_int8_graph(model: onnx.ModelProto) -> Int8Graph:
    """Read which Conv/ConvTranspose nodes are quantized and how (see :class:`Int8Graph`)."""
    g = model.graph
    consts = _const_arrays(g)
    producer = {o: n for n in g.node for o in n.output}
    info = Int8Graph()
    wdt: Counter[str] = Counter()
    adt: Counter[str] = Counter()
    ddt: Counter[str] = Counter()
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2:
            zp = consts.get(n.input[2])
            if zp is not None and np.any(zp != 0):
                info.nonzero_zero_points += 1
        if n.op_type == "DequantizeLinear":
            ddt[_quantized_dtype(n.input[0], consts, producer)] += 1
    info.dequantize_dtypes = dict(ddt)
    for n in g.node:
        if n.op_type not in QUANTIZED_OPS:
            continue
        counts = info.ops.setdefault(n.op_type, [0, 0])
        counts[1] += 1
        if len(n.input) > 2 and n.input[2] and n.input[2] in consts:
            info.float_biases += consts[n.input[2]].dtype.kind == "f"
        x_dq, w_dq = producer.get(n.input[0]), producer.get(n.input[1])
        if not (x_dq and w_dq and x_dq.op_type == w_dq.op_type == "DequantizeLinear"):
            info.problems.append(f"{n.op_type} {n.name or n.output[0]} is not quantized")
            continue
        counts[0] += 1
        weight = consts.get(w_dq.input[0])
        scale = consts.get(w_dq.input[1])
        if weight is not None:
            wdt[weight.dtype.name] += 1
        if scale is not None and weight is not None:
            out_ch = weight.shape[_WEIGHT_AXIS[n.op_type]]
            axis = next((a.i for a in w_dq.attribute if a.name == "axis"), 1)
            if scale.size == out_ch and out_ch > 1 and axis == _WEIGHT_AXIS[n.op_type]:
                info.weights_per_channel += 1
            else:
                info.weights_per_tensor += 1
        q = producer.get(x_dq.input[0])  # the activation's QuantizeLinear
        if q is not None and q.op_type == "QuantizeLinear" and len(q.input) > 2:
            zp = consts.get(q.input[2])
            if zp is not None:
                adt[zp.dtype.name] += 1
    info.weight_dtypes, info.activation_dtypes = dict(wdt), dict(adt)
    qdq = {"QuantizeLinear", "DequantizeLinear", "Constant", *QUANTIZED_OPS}
    info.float_ops = sorted({n.op_type for n in g.node if n.op_type not in qdq})
    out = producer.get(g.output[0].name)
    info.output_op = out.op_type if out is not None else ""
    _check(info, g)
    return info


def _check(info: Int8Graph, g: onnx.GraphProto) -> None:
    """Fill ``info.problems`` with every way the graph differs from the wanted INT8 graph."""
    for op in QUANTIZED_OPS:
        done, total = info.ops.get(op, [0, 0])
        if total == 0:
            info.problems.append(f"no {op} node")
    if info.weights_per_tensor:
        info.problems.append(f"{info.weights_per_tensor} weights are quantized per tensor")
    if set(info.weight_dtypes) - {"int8"}:
        info.problems.append(f"weights stored as {info.weight_dtypes}, not int8")
    if set(info.activation_dtypes) != {"int8"}:
        info.problems.append(f"activations quantized to {info.activation_dtypes or 'nothing'}")
    if info.nonzero_zero_points:
        info.problems.append(f"{info.nonzero_zero_points} zero points are not 0 (asymmetric)")
    other = {k: v for k, v in info.dequantize_dtypes.items() if k != "int8"}
    if other:
        info.problems.append(
            f"DequantizeLinear reads {other} (TensorRT dequantizes int8, never e.g. the int32 "
            "of a quantized bias)"
        )
    if info.output_op in ("DequantizeLinear", "QuantizeLinear", ""):
        info.problems.append(f"the output comes from {info.output_op or 'nowhere'}, not float")
    io = [g.input[0].type.tensor_type.elem_type, g.output[0].type.tensor_type.elem_type]
    if io != [onnx.TensorProto.FLOAT] * 2:
        info.problems.append(f"graph I/O is {[_dtype(t) for t in io]}, not float32")


def verify_int8_graph(info: Int8Graph, name: str) -> None:
    """Raise P2PError naming ``name`` and every problem unless the graph is the INT8 one."""
    if not info.ok:
        raise P2PError(f"{name}: not the INT8 graph wanted: " + "; ".join(info.problems) + ".")


# --- quantizing --------------------------------------------------------------------------


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over (n, 3, S, S) images, one per call."""

    def __init__(self, name: str, images: np.ndarray) -> None:
        self.name = name
        self._it: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.name: x[None].astype(np.float32)}


class _DropQuantizerAdvice(logging.Filter):
    """The quantizer logs, on the root logger, advice to pre-process the model: done and
    measured (README: no change on this graph), so not the user's concern."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantizer's advice and its progress prints (histogram methods print)."""
    root = logging.getLogger()
    flt = _DropQuantizerAdvice()
    root.addFilter(flt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(flt)


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calib: np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    input_name: str = "input",
) -> Int8Graph:
    """Write the QDQ INT8 model of ``fp32_onnx`` at ``out_path``, calibrated on ``calib``.

    Args:
        fp32_onnx: the fp32 export (``model.onnx``).
        out_path: where the QDQ model goes (not atomic: the caller stages it).
        calib: (n, 3, S, S) float32 RGB in [-1, 1].
        method: ``minmax``, ``percentile`` or ``entropy``.
    Returns:
        The graph's :class:`Int8Graph`, already verified.
    Raises:
        P2PError: the quantizer failed or wrote a graph that is not the INT8 one wanted.
    """
    require("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise P2PError(f"calibration method must be one of {', '.join(methods)}, got {method!r}.")
    out_path = Path(out_path)
    try:
        # The calibration pass writes an augmented model into its own temporary folder.
        with _quiet_quantizer():
            quantize_static(
                str(fp32_onnx),
                str(out_path),
                _Reader(input_name, calib),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[method],
                calibration_providers=["CPUExecutionProvider"],
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    # Float biases: TensorRT cannot dequantize the INT32 ones (module docstring).
                    "QuantizeBias": False,
                },
            )
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise P2PError(f"{fp32_onnx}: INT8 quantization failed ({first[:300]}).") from None
    info = inspect_int8_graph(onnx.load(str(out_path)))
    verify_int8_graph(info, str(out_path))
    return info


# --- the quality gate --------------------------------------------------------------------


@dataclass
class GateReport:
    """PSNR (dB, range [-1, 1]) of the INT8 model against fp32 on held-out images.

    Attributes:
        psnr_db: the gate's figure, the worst held-out image's PSNR.
        mean_psnr_db: PSNR over all held-out pixels together.
        images: held-out image count.
        threshold: the bar (``psnr_db`` >= it passes).
    """

    psnr_db: float
    mean_psnr_db: float
    images: int
    threshold: float = MIN_PSNR_DB

    @property
    def passed(self) -> bool:
        return self.psnr_db >= self.threshold  # NaN and -inf fail, inf (identical) passes

    def summary(self) -> str:
        return (
            f"PSNR vs fp32 {self.psnr_db:.1f} dB on the worst of {self.images} held-out images "
            f"(all together {self.mean_psnr_db:.1f} dB; gate >= {self.threshold:.0f} dB)"
        )

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return round(v, 2) if math.isfinite(v) else None

        return {
            "psnr_db": num(self.psnr_db),
            "mean_psnr_db": num(self.mean_psnr_db),
            "held_out_images": self.images,
            "threshold_db": self.threshold,
            "metric": "worst held-out image, PSNR vs the fp32 ONNX, range [-1, 1]",
            "passed": self.passed,
        }


def quality_gate(
    int8_onnx: str | Path,
    fp32_onnx: str | Path,
    holdout: np.ndarray,
    threshold: float = MIN_PSNR_DB,
) -> GateReport:
    """Run both models in ONNX Runtime (CPU) on ``holdout`` ((m, 3, S, S) float32 in [-1, 1]).

    Returns the report (passed or not); the caller decides what to do with a failure.
    """
    from p2p_deploy.export.parity import ort_session

    s8, s32 = ort_session(int8_onnx), ort_session(fp32_onnx)
    name8, name32 = s8.get_inputs()[0].name, s32.get_inputs()[0].name
    worst, se, n = math.inf, 0.0, 0
    for x in holdout:
        x = x[None].astype(np.float32)
        got = s8.run(None, {name8: x})[0].astype(np.float32)
        ref = s32.run(None, {name32: x})[0].astype(np.float32)
        if not np.isfinite(got).all():
            worst = -math.inf
        else:
            worst = min(worst, psnr(got, ref))
        se += float(np.square(got.astype(np.float64) - ref).sum())
        n += ref.size
    # All held-out pixels together; a NaN output scores -inf, as its image does above.
    mean = -math.inf if math.isnan(se) else psnr_from_mse(se / max(n, 1))
    return GateReport(psnr_db=worst, mean_psnr_db=mean, images=len(holdout), threshold=threshold)
