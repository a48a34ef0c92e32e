"""Models that are not what they claim: the one model sanity check.

Every model file is checked against what a pix2pix generator is before any work starts, and a
model that fails is one line naming the file and what is wrong (never a traceback, never a run
that writes black images and exits 0):

* its I/O (:func:`check_io`, from the ONNX graph in :func:`~p2p_deploy.models.opening.open_model`
  and from each runtime's own view when a runner loads it): exactly one input and one output,
  the input ``(N, 3, S, S)`` float32 or float16 (a ``uint8`` input is refused by every runner
  alike), ``S`` known from the graph or the card and agreeing with the card, the output
  ``(N, 3, S, S)`` float where the graph says its shape;
* its weights (:func:`check_onnx_weights`; checkpoints: ``weights.check_finite``): no NaN or
  infinite value;
* its card (``card.py``: a corrupt or hand-edited one is refused naming the field).

Outputs holding NaN or inf at run time are caught by the runners' contract (``runners/base``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.errors import EngineMismatch

FLOAT_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as a runtime describes it.

    Attributes:
        name: the tensor's name.
        dtype: numpy-style name (``float32``, ``float16``, ``uint8``, ...).
        shape: the dims, None for a dynamic or symbolic one; None for an unknown rank.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class ModelIO:
    """What :func:`check_io` found: the image size and a static batch (None: dynamic)."""

    image_size: int
    static_batch: int | None
    input: TensorSpec
    output: TensorSpec


def _dims(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "unknown"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def check_io(
    path: str | Path,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    card_size: int | None = None,
) -> ModelIO:
    """Refuse a model whose I/O is not a generator's (see the module docstring).

    Raises:
        EngineMismatch: one line naming ``path`` and what is wrong.
    """
    if len(inputs) != 1 or len(outputs) != 1:
        raise EngineMismatch(
            f"{path}: a pix2pix generator has one input and one output; this model has "
            f"{len(inputs)} input(s) ({', '.join(i.name for i in inputs) or 'none'}) and "
            f"{len(outputs)} output(s)."
        )
    (inp,), (out,) = inputs, outputs
    if inp.dtype not in FLOAT_DTYPES:
        raise EngineMismatch(
            f"{path}: input {inp.name!r} is {inp.dtype}; a generator takes float32 or float16 "
            "images in [-1, 1]."
        )
    shape = inp.shape
    if shape is None or len(shape) != 4 or shape[1] != 3:
        raise EngineMismatch(
            f"{path}: input {inp.name!r} has shape {_dims(shape)}, not (N, 3, S, S) (RGB "
            "images)."
        )
    h, w = shape[2], shape[3]
    if h is not None and w is not None and h != w:
        raise EngineMismatch(f"{path}: input {inp.name!r} is {h}x{w}; a generator takes S x S.")
    size = h if h is not None else w
    if size is not None and card_size is not None and size != card_size:
        raise EngineMismatch(
            f"{path}: graph input is {size} px but its card says {card_size}; re-export it."
        )
    if size is None:
        size = card_size
    if size is None:
        raise EngineMismatch(
            f"{path}: dynamic image size and no card to say which; re-export it with p2p export."
        )
    if out.dtype not in FLOAT_DTYPES:
        raise EngineMismatch(
            f"{path}: output {out.name!r} is {out.dtype}, not float32 or float16 images."
        )
    oshape = out.shape
    if oshape is not None:
        want = (shape[0], 3, size, size)
        bad = len(oshape) != 4 or any(
            d is not None and e is not None and d != e for d, e in zip(oshape, want, strict=True)
        )
        if bad:
            raise EngineMismatch(
                f"{path}: output {out.name!r} has shape {_dims(oshape)}, not (N, 3, {size}, "
                f"{size}) like its input."
            )
    return ModelIO(size, shape[0], inp, out)


# ONNX TensorProto element types -> numpy-style names (the ones a generator's I/O may have,
# and the integer types a foreign model may declare).
_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}


def onnx_io(graph: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's real inputs (initializers left out) and outputs as :class:`TensorSpec`."""
    inits = {i.name for i in graph.initializer}

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        dtype = _ONNX_DTYPES.get(t.elem_type, f"type {t.elem_type}")
        if not t.HasField("shape"):
            return TensorSpec(v.name, dtype, None)
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        return TensorSpec(v.name, dtype, dims)

    return [spec(v) for v in graph.input if v.name not in inits], [spec(v) for v in graph.output]


def check_onnx_weights(graph: Any, path: str | Path) -> None:
    """Refuse an ONNX graph whose float initializers hold NaN or inf (it would write black or
    garbage images with exit 0).

    Raises:
        EngineMismatch: naming the first initializer that holds one.
    """
    import numpy as np
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.data_type not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            continue
        try:
            values = numpy_helper.to_array(init)
        except Exception:  # noqa: BLE001 - external or odd data: the runtime will say
            continue
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise EngineMismatch(
                f"{path}: weights hold NaN or inf ({bad:,} value(s) in {init.name}); the model "
                "is broken (exported from a diverged checkpoint?)."
            )


@dataclass(frozen=True)
class OnnxFacts:
    """What :func:`inspect_onnx` read from an ONNX file's bytes, once."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str | None


def inspect_onnx(data: bytes, path: str | Path, card_size: int | None) -> OnnxFacts | None:
    """Parse an ONNX model's bytes once: check its I/O (:func:`check_io`) and weights
    (:func:`check_onnx_weights`), and label its precision. None when the onnx package is
    missing (the runtime then checks what it can).

    Raises:
        EngineMismatch: not an ONNX model, or not a generator (one line naming ``path``).
    """
    try:
        import onnx
    except ImportError:
        return None
    from p2p_deploy.errors import first_line

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise EngineMismatch(
            f"{path}: not an ONNX model ({first_line(exc, 120) or 'it does not parse'})."
        ) from None
    inputs, outputs = onnx_io(model.graph)
    check_io(path, inputs, outputs, card_size)
    check_onnx_weights(model.graph, path)
    return OnnxFacts(inputs, outputs, graph_precision(model))


def graph_precision(model: Any) -> str | None:
    """``fp16`` / ``fp32`` of a parsed ONNX model by its float initializers (most elements),
    ``int8`` when its convolutions are fed by int8 weights; None without float weights."""
    counts = {1: 0, 10: 0, 3: 0}  # FLOAT, FLOAT16, INT8
    for init in model.graph.initializer:
        if init.data_type in counts:
            n = 1
            for d in init.dims:
                n *= int(d)
            counts[init.data_type] += n
    if not any(counts.values()):
        return None
    return max((("int8", counts[3]), ("fp16", counts[10]), ("fp32", counts[1])),
               key=lambda kv: kv[1])[0]  # fmt: skip
