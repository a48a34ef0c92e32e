"""What precision a TensorRT engine computes in, from three sources, in order of authority.

1. The strongly typed network, before the build. Under strong typing every tensor's dtype is
   fixed by the ONNX graph (TensorRT 11 has no other mode; 10.x gets the STRONGLY_TYPED flag),
   so the network's convolution outputs *are* the engine's compute precision.
   :func:`network_verdict` refuses a build whose heavy layers are not in the wanted precision.
2. The engine's I/O tensor dtypes (``ICudaEngine.get_tensor_dtype``): must match the card.
3. The engine inspector's layer information (``IEngineInspector.get_engine_information`` in
   JSON, read with an execution context attached: without one a dynamic-shape engine prints
   "N/A due to dynamic shapes" for every tensor). Kept as a record in the card; it refuses
   an engine only on positive evidence: a convolution/GEMM layer whose output or weights are
   fp32 in an fp16 engine (or fp16 in an fp32 one). Reformat/copy layers at fp32 I/O, Cast
   layers, "N/A" and unreadable entries are recorded, never refused.

The inspector JSON comes in two layouts, both read here:
  * TensorRT 10.x: one combined ``"Format/Datatype"`` text per tensor, e.g.
    ``"Row major linear FP16 format"``, ``"Channel major FP16 format where channel % 4 == 0"``;
  * TensorRT 11.x: separate ``"Datatype"`` and ``"Format"`` keys (as read by Polygraphy 0.53's
    ``tools/inspect/subtool/model/extractors/_trt.py``), and ``"I/O Tensors"`` objects with a
    ``"DataType"`` key (NVIDIA, "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x").

Everything here is plain Python over strings and dicts: it runs, and is tested, without
TensorRT.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from p2p_deploy.errors import P2PError

# Words TensorRT uses for dtypes: enum names (DataType.HALF), inspector texts (Half, FP16,
# "Row major linear FP32 format"). Ordered: fp16 words first, so "float16" is not read as
# "float". Polygraphy's _TRT_DTYPE_MAP (extractors/_trt.py) matches the same words.
_DTYPE_WORDS = (
    ("fp16", ("half", "fp16", "float16")),
    ("bf16", ("bf16", "bfloat16")),
    ("fp8", ("fp8", "float8e4m3", "float8e5m2")),
    ("fp32", ("float", "fp32", "float32")),
    ("int8", ("int8",)),
    ("int32", ("int32",)),
    ("int64", ("int64",)),
    ("bool", ("bool",)),
)
FLOAT_KINDS = ("fp16", "fp32", "bf16", "fp8")
# Layers whose arithmetic is the model's cost: what precision means for this generator.
_COMPUTE_WORDS = ("convolution", "deconvolution", "conv", "gemm", "matrixmultiply", "matmul")
_NOT_COMPUTE_WORDS = ("reformat", "copy", "cast", "shuffle", "noop", "constant", "identity")
NOT_AVAILABLE = "n/a"  # "N/A due to dynamic shapes": no context attached, or none possible


def dtype_word(text: Any) -> str:
    """``fp16``/``fp32``/``int8``/... from a TensorRT dtype text (``DataType.HALF``, ``Half``,
    ``Row major linear FP16 format``); ``n/a`` for "N/A due to dynamic shapes"; ``unknown``."""
    t = str(text).lower().replace("datatype.", "")
    if t.strip().startswith("n/a"):
        return NOT_AVAILABLE
    for name, words in _DTYPE_WORDS:
        if any(re.search(rf"(?<![a-z0-9]){w}(?![a-z0-9])", t) for w in words):
            return name
    return "unknown"


def tensor_dtype(entry: Any) -> str:
    """The dtype of one inspector tensor entry, in either layout (see the module docstring)."""
    if not isinstance(entry, dict):
        return "unknown"
    if "Format/Datatype" in entry:  # TensorRT 10.x
        return dtype_word(entry["Format/Datatype"])
    for key in ("Datatype", "DataType"):  # TensorRT 11.x: the dtype has its own key
        if key in entry:
            return dtype_word(entry[key])
    if "Format" in entry:  # 11.x "Format" alone still names it: "Row major linear FP32 format"
        return dtype_word(entry["Format"])
    return "unknown"


def is_compute_layer(layer_type: str) -> bool:
    """A convolution / deconvolution / GEMM layer, by its inspector ``LayerType``
    (``CaskConvolution``, ``CaskDeconvolution``, ``gemm``...) or network layer type
    (``LayerType.CONVOLUTION``...). Fused kernels of other types (Myelin/kgen) are recorded in
    ``layer_types`` but never judged: their type says nothing about their arithmetic."""
    t = str(layer_type).lower().replace("layertype.", "").replace("_", "")
    if any(w in t for w in _NOT_COMPUTE_WORDS):
        return False
    return any(w in t for w in _COMPUTE_WORDS)


# --- 1. the strongly typed network ------------------------------------------------------------


@dataclass(frozen=True)
class NetworkLayer:
    """One ``INetworkDefinition`` layer: its name, ``str(layer.type)`` and output dtypes
    (``str(layer.get_output(i).dtype)``)."""

    name: str
    type: str
    outputs: tuple[str, ...]


def network_layers(network: Any) -> list[NetworkLayer]:
    """The layers of a parsed TensorRT network (needs TensorRT; the rest of this module not)."""
    out = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        dtypes = tuple(str(layer.get_output(j).dtype) for j in range(layer.num_outputs))
        out.append(NetworkLayer(layer.name, str(layer.type), dtypes))
    return out


def network_verdict(layers: list[NetworkLayer], want: str, source: str) -> dict[str, Any]:
    """Check the network's compute layers are ``want`` (``fp16``/``fp32``) before building.

    Returns the record for the card: compute-layer dtype counts and the total layer count.

    Raises:
        P2PError: a convolution/GEMM computes in another float precision (positive evidence),
            or the network has no compute layer at all (nothing to label).
    """
    counts: Counter[str] = Counter()
    wrong: list[str] = []
    for layer in layers:
        if not is_compute_layer(layer.type):
            continue
        kinds = {dtype_word(d) for d in layer.outputs} & set(FLOAT_KINDS)
        for kind in kinds or {"unknown"}:
            counts[kind] += 1
        if kinds - {want}:
            wrong.append(layer.name)
    if not counts:
        raise P2PError(f"{source}: the network has no convolution layers to verify.")
    if wrong:
        raise P2PError(
            f"{source}: the strongly typed network computes {len(wrong)} convolution layers in "
            f"{', '.join(sorted(set(counts) - {want}))}, not {want} (e.g. {wrong[0]}); "
            f"export the ONNX in {want} and build again."
        )
    return {"compute_layers": dict(counts), "layers": len(layers)}


# --- 2. engine I/O ----------------------------------------------------------------------------


def io_verdict(io: dict[str, str], io_dtype: str, source: str) -> dict[str, str]:
    """Check every engine I/O tensor is ``io_dtype`` (``float32``/``float16``).

    ``io``: tensor name -> ``str(engine.get_tensor_dtype(name))``. Returns name -> fp16/fp32.

    Raises:
        P2PError: naming the tensors of another dtype.
    """
    want = {"float32": "fp32", "float16": "fp16"}[io_dtype]
    words = {name: dtype_word(d) for name, d in io.items()}
    bad = {n: w for n, w in words.items() if w != want}
    if bad:
        raise P2PError(f"{source}: engine I/O {bad} is not {io_dtype} as its ONNX says.")
    return words


# --- 3. the engine inspector ------------------------------------------------------------------


@dataclass
class InspectorRecord:
    """The engine inspector's layer information, condensed for the card.

    Attributes:
        layout: ``10.x Format/Datatype``, ``11.x Datatype+Format``, ``names only`` or ``empty``.
        layers: number of layers listed.
        compute: compute layers (conv/deconv/GEMM) by the precision shown (``n/a``, ``unknown``
            when the inspector did not say).
        tensors: every layer output by dtype (reformat/cast layers included).
        layer_types: layer count per ``LayerType``.
        contrary: compute layers showing a float precision other than the wanted one.
    """

    layout: str = "empty"
    layers: int = 0
    compute: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, int] = field(default_factory=dict)
    layer_types: dict[str, int] = field(default_factory=dict)
    contrary: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "layers": self.layers,
            "compute_layers": self.compute,
            "tensors": self.tensors,
            "layer_types": self.layer_types,
            "contrary": self.contrary[:20],
        }


def _layer_precisions(layer: dict[str, Any]) -> set[str]:
    """Float precisions a compute layer computes in, as far as the inspector shows.

    The weights' type (``{"Weights": {"Type": "Half"}}``, printed by TensorRT 10 for
    convolutions even under "N/A due to dynamic shapes") decides when present. Otherwise only
    a precision shown on *every* float tensor of the layer counts: TensorRT fuses the ONNX
    graph's I/O Casts into the first/last convolution, which then reads fp32 and computes and
    writes fp16 (or the reverse), and one fp32 side is no evidence of fp32 arithmetic.
    """
    weights = layer.get("Weights")
    if isinstance(weights, dict) and "Type" in weights:
        w = dtype_word(weights["Type"])
        if w in FLOAT_KINDS:
            return {w}
    sides = []
    for key in ("Inputs", "Outputs"):
        kinds = {tensor_dtype(t) for t in layer.get(key) or []} & set(FLOAT_KINDS)
        if kinds:
            sides.append(kinds)
    if not sides:
        return set()
    common = set.intersection(*sides)
    return common if common else set.union(*sides)


def _is_contrary(layer: dict[str, Any], want: str) -> bool:
    """Positive evidence of another precision (see :func:`_layer_precisions`)."""
    kinds = _layer_precisions(layer)
    weights = layer.get("Weights")
    if isinstance(weights, dict) and dtype_word(weights.get("Type", "")) in FLOAT_KINDS:
        return want not in kinds
    sides = [
        {tensor_dtype(t) for t in layer.get(key) or []} & set(FLOAT_KINDS)
        for key in ("Inputs", "Outputs")
    ]
    sides = [k for k in sides if k]
    return bool(sides) and all(want not in k for k in sides)


def inspector_layers(info: str | dict[str, Any]) -> list[Any] | None:
    """The ``Layers`` list of ``get_engine_information(JSON)`` output (a JSON string or its
    parsed dict); None when the text is not JSON. Entries are dicts, or bare names for an
    engine built without ``ProfilingVerbosity.DETAILED``."""
    try:
        data = json.loads(info) if isinstance(info, str) else info
    except json.JSONDecodeError:
        return None
    return data.get("Layers", []) if isinstance(data, dict) else []


def read_inspector(info: str | dict[str, Any], want: str) -> InspectorRecord:
    """Parse ``get_engine_information(JSON)`` output (either layout) into a record.

    ``want``: ``fp16``/``fp32``; compute layers showing another float precision go into
    ``contrary`` (the only thing :func:`inspector_verdict` refuses on).
    """
    layers = inspector_layers(info)
    if layers is None:
        return InspectorRecord(layout="unreadable")
    rec = InspectorRecord(layers=len(layers))
    if not layers:
        return rec
    if not any(isinstance(layer, dict) for layer in layers):
        rec.layout = "names only"  # built without ProfilingVerbosity.DETAILED
        return rec
    compute: Counter[str] = Counter()
    tensors: Counter[str] = Counter()
    types: Counter[str] = Counter()
    layout10 = layout11 = False
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        ltype = str(layer.get("LayerType", "unknown"))
        types[ltype] += 1
        for out in layer.get("Outputs") or []:
            if isinstance(out, dict):
                layout10 |= "Format/Datatype" in out
                layout11 |= any(k in out for k in ("Datatype", "DataType", "Format"))
            tensors[tensor_dtype(out)] += 1
        if not is_compute_layer(ltype):
            continue
        kinds = _layer_precisions(layer) & set(FLOAT_KINDS)
        if not kinds:
            shown = {tensor_dtype(o) for o in layer.get("Outputs") or []}
            compute[NOT_AVAILABLE if NOT_AVAILABLE in shown else "unknown"] += 1
            continue
        for kind in kinds:
            compute[kind] += 1
        if _is_contrary(layer, want):
            rec.contrary.append(str(layer.get("Name", "?")))
    rec.layout = (
        "10.x Format/Datatype" if layout10 else "11.x Datatype+Format" if layout11 else "no dtypes"
    )
    rec.compute, rec.tensors, rec.layer_types = dict(compute), dict(tensors), dict(types)
    return rec


def inspector_verdict(rec: InspectorRecord, want: str, source: str) -> None:
    """Refuse on positive evidence only: compute layers the inspector shows in another float
    precision. No information ("N/A", names only) is recorded, not refused: strong typing and
    the I/O dtypes already fixed the precision.

    Raises:
        P2PError: naming the layers.
    """
    if rec.contrary:
        other = sorted(k for k in rec.compute if k in FLOAT_KINDS and k != want)
        raise P2PError(
            f"{source}: the engine inspector shows {len(rec.contrary)} convolution layers in "
            f"{', '.join(other) or 'another precision'}, not {want} (e.g. {rec.contrary[0]}); "
            "refusing to label it so."
        )
