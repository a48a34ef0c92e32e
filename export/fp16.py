"""Half precision: the fp16 wrapper exported to ONNX and the check that the graph really is fp16.

TensorRT 11 has no FP16 builder flag; a strongly typed build takes its precision from the ONNX
graph's own types. So the fp16 ONNX must carry fp16 weights and fp16 compute, with explicit
``Cast`` nodes at the float32 input/output (unless fp16 I/O is asked for). The precision written
in a card is what :func:`verify_graph_precision` found, not what was requested.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx
import torch
from torch import nn

from p2p_deploy.errors import P2PError

IO_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}
# ONNX TensorProto element types by name, and back.
ONNX_FLOAT = onnx.TensorProto.FLOAT
ONNX_HALF = onnx.TensorProto.FLOAT16
_ONNX_NAMES = {
    ONNX_FLOAT: "float32",
    ONNX_HALF: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.BFLOAT16: "bfloat16",
}
FLOAT_TYPES = frozenset(_ONNX_NAMES)
# Ops that do the arithmetic: their outputs must be fp16 in an fp16 graph.
COMPUTE_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "InstanceNormalization",
        "BatchNormalization",
        "Relu",
        "LeakyRelu",
        "Tanh",
        "Concat",
        "Add",
        "Mul",
        "Sub",
        "Div",
    }
)


class HalfPrecisionGenerator(nn.Module):
    """An fp16 copy of an inference generator with casts at its boundary.

    Input: (N, C, S, S) ``io_dtype`` in [-1, 1]; cast to fp16, run in fp16, cast back.
    Output: (N, C, S, S) ``io_dtype`` in [-1, 1]. The casts become ONNX ``Cast`` nodes.
    """

    def __init__(self, model: nn.Module, io_dtype: str = "float32") -> None:
        super().__init__()
        if io_dtype not in IO_DTYPES:
            raise P2PError(f"io dtype must be one of {', '.join(IO_DTYPES)}, got {io_dtype!r}.")
        self.model = model.half()
        self.io = IO_DTYPES[io_dtype]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(torch.float16)).to(self.io)


@dataclass
class GraphPrecision:
    """What an ONNX graph computes in.

    Attributes:
        input_dtype / output_dtype: element types of the graph input/output (``float32``...).
        initializers: float initializer count per dtype, e.g. {"float16": 40}.
        compute: output dtype count of compute nodes (Conv, norm, activations), per dtype.
        casts: (from, to) dtype of every Cast node, in graph order.
    """

    input_dtype: str
    output_dtype: str
    initializers: dict[str, int] = field(default_factory=dict)
    compute: dict[str, int] = field(default_factory=dict)
    casts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def precision(self) -> str:
        """``fp16`` when every float weight and compute output is fp16, ``fp32`` when all are
        fp32, otherwise ``mixed``."""
        kinds = set(self.initializers) | set(self.compute)
        if kinds == {"float16"}:
            return "fp16"
        if kinds == {"float32"}:
            return "fp32"
        return "mixed"

    def to_dict(self) -> dict[str, object]:
        return {
            "input_dtype": self.input_dtype,
            "output_dtype": self.output_dtype,
            "initializers": self.initializers,
            "compute": self.compute,
            "casts": [list(c) for c in self.casts],
        }


def _dtype_name(elem_type: int) -> str:
    return _ONNX_NAMES.get(elem_type, onnx.helper.tensor_dtype_to_np_dtype(elem_type).name)


def inspect_graph_precision(model: onnx.ModelProto) -> GraphPrecision:
    """Types of weights, compute nodes and casts of ``model`` (shape inference fills the gaps)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types: dict[str, int] = {}
    for vi in [*g.input, *g.output, *g.value_info]:
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    inits = Counter(_dtype_name(i.data_type) for i in g.initializer if i.data_type in FLOAT_TYPES)
    for node in g.node:  # float constants folded into Constant nodes count as weights too
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in FLOAT_TYPES:
                    inits[_dtype_name(a.t.data_type)] += 1
    compute: Counter[str] = Counter()
    casts: list[tuple[str, str]] = []
    for node in g.node:
        if node.op_type == "Cast":
            src = _dtype_name(types.get(node.input[0], 0)) if node.input[0] in types else "?"
            to = next(a.i for a in node.attribute if a.name == "to")
            casts.append((src, _dtype_name(to)))
        elif node.op_type in COMPUTE_OPS:
            for out in node.output:
                compute[_dtype_name(types[out]) if out in types else "unknown"] += 1
    return GraphPrecision(
        input_dtype=_dtype_name(g.input[0].type.tensor_type.elem_type),
        output_dtype=_dtype_name(g.output[0].type.tensor_type.elem_type),
        initializers=dict(inits),
        compute=dict(compute),
        casts=casts,
    )


def verify_graph_precision(gp: GraphPrecision, precision: str, io_dtype: str, name: str) -> None:
    """Check that the graph computes in ``precision`` with ``io_dtype`` input/output.

    For fp16 with float32 I/O: exactly one Cast float32->float16 and one float16->float32.

    Raises:
        P2PError: naming ``name`` and what was found instead.
    """
    want = {"fp32": "float32", "fp16": "float16"}[precision]
    problems = []
    if gp.precision != precision:
        problems.append(
            f"weights {gp.initializers} and compute outputs {gp.compute} are not all {want}"
        )
    if (gp.input_dtype, gp.output_dtype) != (io_dtype, io_dtype):
        problems.append(f"I/O is {gp.input_dtype}/{gp.output_dtype}, expected {io_dtype}")
    if precision == "fp16" and io_dtype == "float32":
        expected = [("float32", "float16"), ("float16", "float32")]
        if sorted(gp.casts) != sorted(expected):
            problems.append(f"Cast nodes {gp.casts}, expected one float32->float16 and one back")
    if problems:
        raise P2PError(f"{name}: the ONNX graph is not {precision}: " + "; ".join(problems) + ".")
