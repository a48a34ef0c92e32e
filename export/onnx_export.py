"""torch -> ONNX for the U-Net generator: names ``input``/``output``, dynamic batch, and a fixed
square size or (``spatial``, ``p2p export --spatial``) dynamic height and width.

Exporter choice: the torch.export-based ("dynamo") exporter, the default since torch 2.9 and the
maintained one; the TorchScript exporter is deprecated. On this generator both give the same
clean node list (Conv, LeakyRelu, InstanceNormalization/BatchNormalization, ConvTranspose,
Concat, Relu, Tanh; no shape arithmetic), the dynamo one natively at opset 18 and converted to
the requested opset by the ONNX version converter. ``stats`` mode exports as
``InstanceNormalization`` (per image and channel: frames of a batch never share statistics).

Dynamic height and width: the U-Net runs on multiples of its stride ``2**n_down`` only (each
skip connection concatenates tensors that must agree), so H and W are exported as derived
dimensions ``stride * height_blocks`` (torch.export's ``Dim`` arithmetic): the exporter proves
the graph for every such size instead of guarding on the example's, and the ONNX input reads
``[batch, 3, 256*height_blocks, 256*width_blocks]``. The graph holds no shape arithmetic
either way; its spatial profile (the sizes it is checked and meant to run at) is in its card.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx
import torch
from torch import nn

from p2p_deploy.atomic import atomic_path
from p2p_deploy.errors import P2PError, first_line
from p2p_deploy.export.fp16 import (
    IO_DTYPES,
    HalfPrecisionGenerator,
    inspect_graph_precision,
    verify_graph_precision,
)
from p2p_deploy.models.card import (
    TEST_NORMS,
    ExportCard,
    ModelCard,
    default_test_norm,
)
from p2p_deploy.models.generator import UNetGenerator
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.spatial import SpatialProfile

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "output"
MIN_OPSET = 17
PRECISIONS = ("fp32", "fp16")
# Example batch for tracing: 2, so the exporter cannot specialise the batch axis to 1; with
# dynamic height and width the example is 3 x 5 strides (no size of 1, none equal to another).
_TRACE_BATCH = 2
_TRACE_BLOCKS = (3, 5)
_MAX_BLOCKS = 1024
_NOISY_LOGGERS = (
    "torch.onnx",
    "torch.export",
    "torch._export",
    "torch.fx",
    "torch._dynamo",
    "torch.utils._sympy",
    "onnxscript",
    "onnx_ir",  # its graph passes log every removed node at INFO
)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints, warnings and INFO logs (they are not ours)."""
    saved = {n: logging.getLogger(n).level for n in _NOISY_LOGGERS}
    try:
        for n in _NOISY_LOGGERS:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def inference_module(
    model: UNetGenerator, test_norm: str, precision: str = "fp32", io_dtype: str = "float32"
) -> nn.Module:
    """The exact module that gets exported: eval copy in ``test_norm`` mode, optionally fp16.

    Input/output (N, C, S, S) ``io_dtype`` in [-1, 1]; ``model`` is left untouched.
    """
    prepared = prepare_generator(model, test_norm)
    if precision == "fp16":
        return HalfPrecisionGenerator(prepared, io_dtype).eval()
    return prepared


def check_opset(opset: int) -> None:
    """Raise P2PError unless ``opset`` is between 17 and the newest the installed onnx knows."""
    if opset < MIN_OPSET:
        raise P2PError(
            f"opset {opset} is too old: InstanceNormalization export needs {MIN_OPSET} or newer."
        )
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise P2PError(
            f"opset {opset} is newer than this onnx {onnx.__version__} knows ({newest})."
        )


def _check_args(
    model: UNetGenerator, precision: str, test_norm: str, opset: int, io_dtype: str
) -> None:
    if precision not in PRECISIONS:
        raise P2PError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if test_norm not in TEST_NORMS:
        raise P2PError(f"test norm must be one of {', '.join(TEST_NORMS)}, got {test_norm!r}.")
    check_opset(opset)
    if io_dtype not in IO_DTYPES:
        raise P2PError(f"io dtype must be one of {', '.join(IO_DTYPES)}, got {io_dtype!r}.")
    if precision == "fp32" and io_dtype != "float32":
        raise P2PError("fp16 input/output needs an fp16 export (--fp16).")
    if not isinstance(model, UNetGenerator):
        raise P2PError(f"expected a UNetGenerator, got {type(model).__name__}.")


def _check_interface(
    proto: onnx.ModelProto,
    size: int,
    channels: tuple[int, int],
    name: str,
    dynamic_hw: bool = False,
) -> None:
    """Names, dynamic batch axis and fixed spatial size (``dynamic_hw``: dynamic height and
    width) of the graph's one input and output."""
    g = proto.graph
    for vis, tname, ch in (
        (g.input, INPUT_NAME, channels[0]),
        (g.output, OUTPUT_NAME, channels[1]),
    ):
        if len(vis) != 1 or vis[0].name != tname:
            raise P2PError(
                f"{name}: expected one tensor named {tname!r}, found {[v.name for v in vis]}."
            )
        dims = vis[0].type.tensor_type.shape.dim
        def dynamic(d) -> bool:  # noqa: ANN001 - onnx's TensorShapeProto.Dimension
            return bool(d.dim_param) and not d.HasField("dim_value")

        batch_dynamic = len(dims) == 4 and dynamic(dims[0])
        if dynamic_hw:
            fixed = len(dims) == 4 and dims[1].dim_value == ch and all(map(dynamic, dims[2:]))
            want = f"[batch, {ch}, height, width]"
        else:
            fixed = [d.dim_value for d in dims[1:]] == [ch, size, size]
            want = f"[batch, {ch}, {size}, {size}]"
        if not (batch_dynamic and fixed):
            raise P2PError(
                f"{name}: {tname} has shape {[d.dim_param or d.dim_value for d in dims]}, "
                f"expected {want}."
            )


def export_onnx(
    model: UNetGenerator,
    out_path: str | Path,
    *,
    precision: str = "fp32",
    test_norm: str | None = None,
    opset: int = MIN_OPSET,
    io_dtype: str = "float32",
    card: ModelCard | None = None,
    spatial: SpatialProfile | None = None,
) -> ExportCard:
    """Export ``model`` to ONNX at ``out_path`` (atomically) with its card ``<out_path>.json``.

    Args:
        model: the generator (any mode; an eval copy is exported, ``model`` is untouched).
        out_path: the ``.onnx`` file to write.
        precision: ``fp32``, or ``fp16`` (fp16 weights and compute, casts at the I/O).
        test_norm: ``stats`` or ``running``; default :func:`default_test_norm` of the config.
        opset: ONNX opset, at least 17.
        io_dtype: dtype of ``input``/``output``: ``float32``, or ``float16`` (fp16 only).
        card: the checkpoint's card (direction, training, source sha256), carried into the
            export's card; None: a card of ``model``'s architecture alone.
        spatial: dynamic height and width (multiples of the stride), the MIN:OPT:MAX sizes
            recorded in the card; None: the fixed ``image_size`` square.
    Returns:
        The card written. Graph: ``input`` (N, C_in, S, S) -> ``output`` (N, C_out, S, S),
        values in [-1, 1], N dynamic (with ``spatial``: (N, C, H, W), H and W dynamic).
    Raises:
        P2PError: bad arguments, export failure, or a graph that fails ``onnx.checker`` or the
        interface/precision checks; nothing is left under ``out_path`` then.
    """
    cfg = model.cfg
    test_norm = test_norm or default_test_norm(cfg.norm)
    _check_args(model, precision, test_norm, opset, io_dtype)
    out_path = Path(out_path)
    if spatial is not None:
        spatial.check(cfg.stride)
    module = inference_module(model, test_norm, precision, io_dtype)
    hw = (cfg.image_size, cfg.image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims: dict[int, object] = {0: batch}
    if spatial is not None:
        hw = (_TRACE_BLOCKS[0] * cfg.stride, _TRACE_BLOCKS[1] * cfg.stride)
        dims[2] = cfg.stride * torch.export.Dim("height_blocks", min=1, max=_MAX_BLOCKS)
        dims[3] = cfg.stride * torch.export.Dim("width_blocks", min=1, max=_MAX_BLOCKS)
    example = torch.zeros(_TRACE_BATCH, cfg.in_channels, *hw, dtype=IO_DTYPES[io_dtype])
    with atomic_path(out_path) as tmp:
        try:
            with _quiet_exporter(), torch.inference_mode(False), torch.no_grad():
                program = torch.onnx.export(
                    module,
                    (example,),
                    None,
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=(dims,),
                    verbose=False,
                )
                program.save(str(tmp))
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise P2PError(f"{out_path}: ONNX export failed ({first_line(exc, 300)}).") from None
        proto = onnx.load(str(tmp))
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise P2PError(
                f"{out_path}: the exported graph fails onnx.checker ({first_line(exc, 300)})."
            ) from None
        got_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        if got_opset != opset:
            # The exporter keeps its native opset, with a warning we silence, when the version
            # converter cannot reach the one asked for: the card must not claim otherwise.
            raise P2PError(
                f"{out_path}: opset {opset} was asked for, but the exporter could only write "
                f"opset {got_opset}; use --opset {got_opset}."
            )
        _check_interface(
            proto,
            cfg.image_size,
            (cfg.in_channels, cfg.out_channels),
            str(out_path),
            dynamic_hw=spatial is not None,
        )
        gp = inspect_graph_precision(proto)
        verify_graph_precision(gp, precision, io_dtype, str(out_path))
    side = [-1, -1] if spatial is not None else [cfg.image_size, cfg.image_size]
    if card is not None and card.generator != cfg:
        raise P2PError(f"{out_path}: the card describes another generator than the model.")
    export_card = ExportCard.of(
        card or ModelCard(generator=cfg, test_norm=test_norm),
        kind="onnx",
        precision=gp.precision,  # what the graph check found (== precision, verified above)
        io_dtype=io_dtype,
        test_norm=test_norm,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_shape=[-1, cfg.in_channels, *side],
        output_shape=[-1, cfg.out_channels, *side],
        spatial_profile=spatial,
        opset=got_opset,
        extra={
            "exporter": "torch.onnx.export(dynamo=True)",
            "torch_version": torch.__version__,
            "graph_precision": gp.to_dict(),
        },
    )
    export_card.write(out_path)
    log.debug("wrote %s (%s, %s, opset %d)", out_path, gp.precision, test_norm, got_opset)
    return export_card
