"""Precision evidence for an INT8 TensorRT engine built from the QDQ graph (explicit
quantization: no calibrator, no INT8 builder flag; a strongly typed build of the QDQ ONNX).

The fp16/fp32 checks of :mod:`.trt_precision` read the convolutions' *output* dtypes; in an INT8
engine a convolution reads int8 and may write float (into a norm), so the evidence differs:

1. the strongly typed network, before the build: every convolution / deconvolution takes its
   data and its weights from ``DequantizeLinear`` layers (``IDequantizeLayer``), which is what
   makes TensorRT fuse them into int8 kernels;
2. the engine inspector (execution context attached): a compute layer whose inputs are shown
   only in a float dtype is positive evidence of a float kernel and refuses the engine; ``N/A``
   or unreadable entries are recorded, not refused (as for fp16).

Plain Python over names and dicts (tested without TensorRT), except :func:`network_convs`.

:func:`build_int8_plan` is how the export builds ``model_int8.plan``: an INT8 plan that fails
to build or to pass its checks is a note beside the kept ``model_int8.onnx``, not the export's
failure (the ONNX already passed its graph check and quality gate, and runs on OpenVINO and
ONNX Runtime).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.errors import MissingDependency, P2PError
from p2p_deploy.export.trt_precision import (
    FLOAT_KINDS,
    NOT_AVAILABLE,
    InspectorRecord,
    inspector_layers,
    is_compute_layer,
    tensor_dtype,
)


@dataclass(frozen=True)
class NetworkConv:
    """A convolution layer of the network and the layer types producing its first two inputs
    (data, weights), e.g. ``("LayerType.DEQUANTIZE", "LayerType.DEQUANTIZE")``."""

    name: str
    type: str
    producers: tuple[str, ...]


def network_convs(network: Any) -> list[NetworkConv]:
    """The convolution/deconvolution layers of a parsed TensorRT network (needs TensorRT)."""
    producer: dict[str, str] = {}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    for layer in layers:
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = str(layer.type)
    convs = []
    for layer in layers:
        if not is_compute_layer(str(layer.type)):
            continue
        ins = [layer.get_input(k) for k in range(min(2, layer.num_inputs))]
        convs.append(
            NetworkConv(
                layer.name,
                str(layer.type),
                tuple(producer.get(t.name, "network input") if t is not None else "-" for t in ins),
            )
        )
    return convs


def int8_network_verdict(convs: list[NetworkConv], source: str) -> dict[str, Any]:
    """Check every convolution reads dequantized data and weights (see the module docstring).

    Raises:
        P2PError: no convolution, or one fed by anything but DequantizeLinear layers.
    """
    if not convs:
        raise P2PError(f"{source}: the network has no convolution layers to verify.")
    wrong = [
        c.name
        for c in convs
        if len(c.producers) < 2 or not all("dequantize" in p.lower() for p in c.producers[:2])
    ]
    if wrong:
        raise P2PError(
            f"{source}: {len(wrong)} of {len(convs)} convolution layers are not fed by "
            f"DequantizeLinear (e.g. {wrong[0]}): not an INT8 QDQ graph; export it with --int8."
        )
    return {"compute_layers": {"int8": len(convs)}, "quantized_inputs": "data and weights"}


def read_int8_inspector(info: str | dict[str, Any]) -> InspectorRecord:
    """The inspector record of an INT8 engine: compute layers counted by their *input* dtype;
    ``contrary`` lists those shown reading only float tensors."""
    layers = inspector_layers(info)
    if layers is None:
        return InspectorRecord(layout="unreadable")
    rec = InspectorRecord(layers=len(layers))
    dicts = [layer for layer in layers if isinstance(layer, dict)]
    if not dicts:
        rec.layout = "names only" if layers else "empty"
        return rec
    compute: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for layer in dicts:
        ltype = str(layer.get("LayerType", "unknown"))
        types[ltype] += 1
        if not is_compute_layer(ltype):
            continue
        kinds = {tensor_dtype(t) for t in layer.get("Inputs") or []}
        if "int8" in kinds:
            compute["int8"] += 1
        elif kinds & set(FLOAT_KINDS):
            compute[sorted(kinds & set(FLOAT_KINDS))[0]] += 1
            rec.contrary.append(str(layer.get("Name", "?")))
        else:
            compute[NOT_AVAILABLE if NOT_AVAILABLE in kinds else "unknown"] += 1
    rec.layout = "inputs read"
    rec.compute, rec.layer_types = dict(compute), dict(types)
    return rec


def int8_inspector_verdict(rec: InspectorRecord, source: str) -> None:
    """Refuse on positive evidence: compute layers the inspector shows reading float only."""
    if rec.contrary:
        raise P2PError(
            f"{source}: the engine inspector shows {len(rec.contrary)} convolution layers "
            f"reading float, not int8 (e.g. {rec.contrary[0]}); refusing to label it int8."
        )


def build_int8_plan(
    int8_onnx: str | Path, plan_path: str | Path, **build_options: Any
) -> tuple[Any, str | None]:
    """Build ``plan_path`` from the (kept, already gated) ``int8_onnx``; ``build_options``
    are :func:`~.tensorrt_build.build_engine`'s (``reference_onnx``, ``profile``...). The
    exporter passes ``int8_onnx`` itself as the reference: the engine must run that graph
    (PSNR >= 30 dB on the parity inputs); its quality against fp32 is the graph's gate.

    Returns ``(plan card, None)`` when built, or ``(None, note)`` when TensorRT rejected the
    graph, the build failed, the engine's int8 evidence or its parity did not hold: the note
    (one line) says so, the same reason goes into ``int8_onnx``'s card
    (``extra.tensorrt_engine``), and no plan is written (build_engine leaves none).

    Raises:
        MissingDependency, NoTensorRTGpu: no TensorRT, no GPU, or no CUDA buffers for the
            parity run: the exporter's "engine skipped" cases, raised as for every plan.
    """
    from p2p_deploy.export.tensorrt_build import NoTensorRTGpu, build_engine
    from p2p_deploy.models.card import read_export_card

    int8_onnx, plan_path = Path(int8_onnx), Path(plan_path)
    try:
        return build_engine(int8_onnx, plan_path, **build_options), None
    except (MissingDependency, NoTensorRTGpu):
        raise
    except P2PError as exc:
        reason = str(exc).rstrip(".")
    card = read_export_card(int8_onnx)
    record = {"plan": plan_path.name, "built": False, "reason": reason}
    dataclasses.replace(card, extra={**card.extra, "tensorrt_engine": record}).write(int8_onnx)
    note = (
        f"{plan_path.name} not built ({reason}); {int8_onnx.name} is kept (it passed its "
        "quality gate) and runs on OpenVINO or ONNX Runtime; the reason is in its card."
    )
    return None, note
