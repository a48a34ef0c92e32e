"""OpenVINO runner (CPU): an exported ``model.onnx`` / ``model_int8.onnx``, or an OpenVINO IR
``.xml`` (with its ``.bin``) that a user brings.

Precision (what :attr:`precision` says is what the compiled model runs, read back from it):

* ``fp32``: ``INFERENCE_PRECISION_HINT`` f32, set explicitly: on CPUs with AMX or AVX512_BF16
  OpenVINO's default is bf16, which must not be labelled fp32;
* ``bf16``: the hint bf16; labelled bf16 only when the compiled model's (de)convolutions run in
  bf16 (a CPU without bf16 support runs them in f32, and the label says fp32), ``bf16+fp32``
  when only some do (OpenVINO 2026.4 runs this generator's ConvTranspose layers in f32 under
  the hint; :attr:`conv_precisions` has the counts);
* ``int8``: the INT8 QDQ graph (``p2p export --int8``): OpenVINO turns the QDQ pairs into
  int8 convolutions (VNNI / AMX-INT8); the float parts run in f32 (``precision="bf16"``
  runs them in bf16 instead).

The label comes from the runtime model: each (de)convolution's ``runtimePrecision``; when they
disagree the label is ``mixed`` and :attr:`conv_precisions` has the counts.

CPU settings: ``INFERENCE_NUM_THREADS`` = ``threads`` (default: physical cores),
``PERFORMANCE_HINT`` LATENCY and one stream (one batch at a time, all threads on it). Each batch
size (and, for an export with dynamic height and width, each frame size: ``p2p export
--spatial``, ``p2p run --resize native``) gets its own compiled model with a static shape,
reshaped from the graph (compiled on first use; the last :data:`COMPILED_SHAPES` are kept):
static shapes let the plugin pick its fastest kernels, and a deployment uses one or two batch
sizes, and a video one frame size.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.deps import require
from p2p_deploy.errors import EngineMismatch, P2PError
from p2p_deploy.media.native import captured_native_stderr
from p2p_deploy.models.card import ExportCard
from p2p_deploy.models.opening import ModelFile
from p2p_deploy.models.sanity import TensorSpec, check_io
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
COMPILED_SHAPES = 8  # compiled (batch, height, width) shapes kept; the oldest go first
_HINT = {"fp32": "f32", "bf16": "bf16"}
_LABEL = {"f32": "fp32", "bf16": "bf16", "i8": "int8", "u8": "int8", "f16": "fp16"}


def cpu_bf16_supported() -> bool:
    """True when OpenVINO's CPU plugin can run bf16 on this CPU (AVX512_BF16 or AMX)."""
    try:
        ov = require("openvino")
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no openvino, no CPU plugin: no bf16
        return False
    return "BF16" in [str(c) for c in caps]


def _graph_is_quantized(model: Any) -> bool:
    """QDQ (from ONNX) or FakeQuantize (an INT8 IR) nodes in the model read by OpenVINO."""
    kinds = {op.get_type_name() for op in model.get_ops()}
    return bool(kinds & {"FakeQuantize", "QuantizeLinear", "DequantizeLinear"}) or (
        "Convert" in kinds
        and any(
            op.get_type_name() == "Constant" and str(op.get_element_type()) in ("i8", "u8")
            for op in model.get_ops()
        )
    )


class OpenVINORunner(Runner):
    """Runs an ONNX export or an IR on OpenVINO's CPU plugin.

    Args:
        model: ``model.onnx``, ``model_int8.onnx`` (with their cards) or an IR ``.xml``, opened
            (:func:`~p2p_deploy.models.opening.open_model`) or a path.
        device: ``cpu`` or None (OpenVINO's CPU plugin); anything else is refused.
        threads: inference threads (default: physical cores).
        precision: ``fp32`` or ``bf16`` for the float arithmetic (default fp32); an INT8 graph
            runs its convolutions in int8 either way.
    """

    backend = "openvino"

    def __init__(
        self,
        model: ModelFile | str | Path,
        device: str | None = None,
        threads: int | None = None,
        precision: str | None = None,
    ) -> None:
        super().__init__(model, "cpu")
        assert self.model is not None
        if device not in (None, "cpu"):
            raise P2PError(
                f"{self.path}: the OpenVINO runner runs on the CPU (device cpu), not {device}."
            )
        if self.model.kind not in ("onnx", "openvino"):
            raise P2PError(f"{self.path}: a {self.model.kind} model, not ONNX or OpenVINO IR.")
        if precision not in (None, *PRECISIONS):
            raise P2PError(f"OpenVINO precision must be fp32 or bf16, got {precision!r}.")
        from p2p_deploy.runners.onnxruntime_runner import physical_cores

        self.threads = threads or physical_cores()
        self.hint = precision or "fp32"
        self.card: ExportCard | None = self.model.export_card
        if self.card is not None:
            self.image_size = self.card.image_size
            self.test_norm = self.card.test_norm
        self.precision = "not loaded"
        self.conv_precisions: dict[str, int] = {}
        self.quantized = False
        self._core: Any = None
        self._model: Any = None
        # (batch, height, width) -> (compiled model, request), least recently used first
        self._compiled: OrderedDict[tuple[int, int, int], tuple[Any, Any]] = OrderedDict()

    # -- lifetime -------------------------------------------------------------------------

    def _activate(self) -> None:
        ov = require("openvino")
        self._core = ov.Core()
        try:
            # From the bytes open_model read (an IR's weights as a tensor over its .bin bytes).
            # OpenVINO's own log lines never reach the terminal: our one line says it all.
            with captured_native_stderr(drop_all=True):
                if self.model.weights_data is not None:
                    weights = ov.Tensor(np.frombuffer(self.model.weights_data, dtype=np.uint8))
                    self._model = self._core.read_model(self.model.data, weights)
                else:
                    self._model = self._core.read_model(self.model.data)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own exception types
            raise EngineMismatch(
                f"{self.path}: OpenVINO cannot read this model ({ov_reason(exc)})."
            ) from None
        # The one model sanity check, on OpenVINO's own view of the graph (uint8 input
        # refused here as ONNX Runtime refuses it).
        io = check_io(
            self.path,
            [_spec(i) for i in self._model.inputs],
            [_spec(o) for o in self._model.outputs],
            self.card.image_size if self.card is not None else None,
        )
        self.image_size = io.image_size
        if io.input.shape[2] is None or io.input.shape[3] is None:
            # Dynamic height and width: the sizes of the card's spatial profile (a card is
            # there: check_io refuses a dynamic size without one).
            assert self.card is not None
            self.sizes = self.card.size_range()
        if io.static_batch is not None:  # a static batch axis (e.g. an IR saved for batch 1)
            self.min_batch = self.max_batch = io.static_batch
        self.quantized = _graph_is_quantized(self._model)
        # Compile the smallest batch now: loading errors surface here, and the label is known.
        compiled, _ = self._compile(self.min_batch, *self.warm_size())
        self.conv_precisions = _conv_precisions(compiled)
        self.precision = _label(self.conv_precisions)
        if self.card is not None and self.card.precision == "int8" and self.precision != "int8":
            log.warning("%s: INT8 graph but OpenVINO runs %s", self.path, self.conv_precisions)
        log.debug("openvino runner: %s, convolutions %s", self.describe(), self.conv_precisions)

    def _close(self) -> None:
        self._compiled.clear()
        self._model = None
        self._core = None

    def _compile(self, batch: int, height: int, width: int) -> tuple[Any, Any]:
        """The compiled model and infer request for a static (batch, 3, height, width) input
        (compiled once; the last :data:`COMPILED_SHAPES` shapes are kept)."""
        key = (batch, height, width)
        if key in self._compiled:
            self._compiled.move_to_end(key)
        else:
            model = self._model.clone()
            config = {
                "INFERENCE_PRECISION_HINT": _HINT[self.hint],
                "INFERENCE_NUM_THREADS": self.threads,
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
            }
            try:
                with captured_native_stderr(drop_all=True):
                    model.reshape({model.inputs[0].get_any_name(): [batch, 3, height, width]})
                    compiled = self._core.compile_model(model, "CPU", config)
            except Exception as exc:  # noqa: BLE001
                raise EngineMismatch(
                    f"{self.path}: OpenVINO cannot compile this model ({ov_reason(exc)})."
                ) from None
            self._compiled[key] = (compiled, compiled.create_infer_request())
            while len(self._compiled) > COMPILED_SHAPES:
                self._compiled.popitem(last=False)
        return self._compiled[key]

    # -- inference ------------------------------------------------------------------------

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        _, request = self._compile(*(int(d) for d in batch.shape[0:1] + batch.shape[2:4]))
        request.infer({0: batch}, share_inputs=True)
        # The request owns its output buffer and reuses it on the next call: copy it out.
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def _describe_extras(self) -> list[str]:
        extras = [f"{self.threads} threads", *super()._describe_extras()]
        if self.hint == "bf16":
            extras.insert(0, "bf16 hint")
        if len(self.conv_precisions) > 1:
            convs = ", ".join(f"{v} {k}" for k, v in sorted(self.conv_precisions.items()))
            extras.insert(0, f"convolutions: {convs}")
        return extras


_OV_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "u8": "uint8", "i8": "int8",
              "i32": "int32", "i64": "int64", "bf16": "bfloat16", "boolean": "bool"}  # fmt: skip


def _spec(port: Any) -> TensorSpec:
    """An OpenVINO model input/output as the sanity check's TensorSpec."""
    shape = port.get_partial_shape()
    dims = (
        None
        if shape.rank.is_dynamic
        else tuple(d.get_length() if d.is_static else None for d in shape)
    )
    names = port.get_names()
    name = sorted(names)[0] if names else port.get_any_name()
    kind = port.get_element_type().get_type_name()
    return TensorSpec(name, _OV_DTYPES.get(kind, kind), dims)


def ov_reason(exc: BaseException) -> str:
    """The line of an OpenVINO exception that says what is wrong: its text starts with
    ``Exception from src/inference/src/cpp/core.cpp:105:`` lines (where, not why)."""
    lines = [ln.strip().lstrip("- ").strip() for ln in str(exc).splitlines() if ln.strip()]
    where = ("Exception from ", "Check '", "FrontEnd API failed", "Summary:", "To facilitate")
    why = [ln for ln in lines if not ln.startswith(where)]
    text = "; ".join(ln.rstrip(".") for ln in why[:2]) if why else (lines or ["?"])[0]
    return text.rstrip(".")[:240]


def _conv_precisions(compiled: Any) -> dict[str, int]:
    """Count of runtime precisions of the compiled model's (de)convolution nodes."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = str(info["layerType"].astype(str)) if "layerType" in info else op.get_type_name()
        if "conv" in kind.lower() and "runtimePrecision" in info:
            counts[_LABEL.get(str(info["runtimePrecision"].astype(str)), "other")] += 1
    return dict(counts)


def _label(counts: dict[str, int]) -> str:
    """The one precision all (de)convolutions run in; ``bf16+fp32`` when the bf16 hint left
    some in fp32 (OpenVINO 2026.4 keeps this generator's ConvTranspose layers in f32 under the
    bf16 hint); ``mixed`` otherwise."""
    kinds = sorted(k for k, v in counts.items() if v)
    if len(kinds) == 1:
        return kinds[0]
    if kinds == ["bf16", "fp32"]:
        return "bf16+fp32"
    return "mixed" if kinds else "unknown"
