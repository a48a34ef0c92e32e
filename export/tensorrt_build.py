"""ONNX -> TensorRT ``.plan`` for TensorRT 10.x and 11.x, precision verified from the engine.

TensorRT 11 removed weak typing (no ``BuilderFlag.FP16``; strong typing always on), so the FP16
engine comes from the fp16 ONNX's own types, built as a strongly typed network on both
versions. After the build the engine itself is asked (I/O tensor dtypes, engine-inspector layer
information at ``ProfilingVerbosity.DETAILED``) and the plan is labelled FP16 only when every
inner layer computes in fp16.

Everything that does not need the ``tensorrt`` module (batch profiles, version dispatch,
inspector-JSON parsing, sidecars, messages) is plain Python here, tested without a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import write_bytes
from p2p_deploy.deps import require
from p2p_deploy.errors import P2PError
from p2p_deploy.gpu import gpu_identity
from p2p_deploy.sidecar import ModelSidecar, sidecar_for

log = logging.getLogger(__name__)

DEFAULT_BATCH = "1:4:16"
DEFAULT_WORKSPACE_GIB = 4.0
INSTALL_HINT = 'pip install "p2p-deploy[gpu]" (TensorRT 10.x or 11.x, with a CUDA GPU)'


class NoTensorRTGpu(P2PError):
    """TensorRT is installed but cannot create a builder: no usable CUDA GPU (or driver)."""


# --- batch profile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchProfile:
    """Optimisation profile of the batch axis: ``min <= opt <= max``, all >= 1."""

    min: int
    opt: int
    max: int

    def as_list(self) -> list[int]:
        return [self.min, self.opt, self.max]

    def shapes(self, channels: int, size: int) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) input shapes (N, C, S, S) for ``IOptimizationProfile.set_shape``."""
        return tuple((b, channels, size, size) for b in self.as_list())


def parse_batch_profile(text: str) -> BatchProfile:
    """``"1:4:16"`` -> BatchProfile(1, 4, 16); a single ``"8"`` means 8:8:8.

    Raises:
        P2PError: not three positive integers in non-decreasing order.
    """
    parts = str(text).strip().split(":")
    if len(parts) == 1:
        parts = parts * 3
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 1 or not values[0] <= values[1] <= values[2]:
        raise P2PError(
            f"--batch {text!r}: expected MIN:OPT:MAX, positive integers with "
            "MIN <= OPT <= MAX (e.g. 1:4:16)."
        )
    return BatchProfile(*values)


# --- version dispatch ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrtFeatures:
    """What this TensorRT version needs and offers.

    Attributes:
        version: the version string, e.g. ``10.3.0``.
        major / minor: parsed numbers.
        strongly_typed_flag: pass ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (10.x);
            on 11.x strong typing is always on and the network needs no flag. ``EXPLICIT_BATCH``
            (ignored from 10.0) and ``BuilderFlag.FP16`` (10.x only) are never used: precision
            comes from the ONNX types.
    """

    version: str
    major: int
    minor: int
    strongly_typed_flag: bool


def trt_features(version: str) -> TrtFeatures:
    """Version dispatch from ``tensorrt.__version__``.

    Raises:
        P2PError: unparsable, or older than 10.0 (name-based I/O and strong typing need 10+).
    """
    m = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if not m:
        raise P2PError(f"cannot read the TensorRT version {version!r}.")
    major, minor = int(m.group(1)), int(m.group(2))
    if major < 10:
        raise P2PError(
            f"TensorRT {version} is too old: p2p needs TensorRT 10.x or 11.x ({INSTALL_HINT})."
        )
    return TrtFeatures(
        version=str(version).strip(),
        major=major,
        minor=minor,
        strongly_typed_flag=major == 10,
    )


def network_flags(trt: Any, features: TrtFeatures) -> int:
    """The ``create_network`` flags: STRONGLY_TYPED on 10.x, none on 11.x (always strong)."""
    flags = 0
    if features.strongly_typed_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


# --- engine precision ------------------------------------------------------------------------

_DTYPE_WORDS = (
    ("fp16", ("half", "fp16", "float16")),
    ("fp32", ("float", "fp32", "float32")),
    ("int8", ("int8",)),
    ("bf16", ("bf16", "bfloat16")),
    ("fp8", ("fp8",)),
    ("int32", ("int32",)),
    ("int64", ("int64",)),
    ("bool", ("bool",)),
)


def dtype_word(text: str) -> str:
    """Normalise a TensorRT dtype description (``DataType.HALF``, ``Half``, ``Row major linear
    FP16 format``, ``Float``) to ``fp16``/``fp32``/...; ``unknown`` when none matches."""
    t = str(text).lower().replace("datatype.", "")
    for name, words in _DTYPE_WORDS:  # fp16 first: "float16" must not read as "float"
        if any(re.search(rf"\b{w}\b", t) for w in words):
            return name
    return "unknown"


def _entry_dtype(entry: Any) -> str:
    if isinstance(entry, dict):
        # 11.x: separate "DataType"; 10.x: combined "Format/Datatype" text.
        for key in ("DataType", "Format/Datatype", "Format/DataType", "Format"):
            if key in entry:
                word = dtype_word(entry[key])
                if word != "unknown":
                    return word
    return "unknown"


@dataclass
class EnginePrecision:
    """Precision of a built engine, read from the engine itself.

    Attributes:
        io: tensor name -> dtype (``fp16``/``fp32``) from ``engine.get_tensor_dtype``.
        layers: count of inner layer output dtypes (outputs that are network outputs excluded).
        non_fp16_layers: names of inner layers whose output is not fp16.
        conv_inputs: count of the input dtypes of (de)convolution layers: all ``int8`` in an
            engine built from the INT8 QDQ graph (explicit quantization).
        non_int8_convs: names of (de)convolution layers whose input is not int8.
    """

    io: dict[str, str] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    non_fp16_layers: list[str] = field(default_factory=list)
    conv_inputs: dict[str, int] = field(default_factory=dict)
    non_int8_convs: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        """``int8`` when every (de)convolution reads int8 (norms and activations stay float in
        the INT8 graph), ``fp16`` / ``fp32`` when all inner layers are, ``mixed``, or
        ``unknown`` (no layer information: the engine was not built with detailed profiling
        verbosity)."""
        kinds = {k for k, v in self.layers.items() if v}
        if not kinds:
            return "unknown"
        if self.conv_inputs and set(self.conv_inputs) == {"int8"}:
            return "int8"
        if kinds == {"fp16"}:
            return "fp16"
        if kinds == {"fp32"}:
            return "fp32"
        return "mixed"


def summarize_engine_info(info: str | dict[str, Any], io: dict[str, str]) -> EnginePrecision:
    """Parse ``IEngineInspector.get_engine_information(JSON)`` (10.x or 11.x schema).

    Each layer's output dtypes are counted, except outputs that are the network's own outputs
    (the final Cast back to float32 I/O) and shape tensors.
    """
    data = json.loads(info) if isinstance(info, str) else info
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    counts: Counter[str] = Counter()
    conv_in: Counter[str] = Counter()
    non_fp16: list[str] = []
    non_int8: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict):  # LAYER_NAMES_ONLY verbosity gives bare names
            continue
        # CaskConvolution / CaskDeconvolution (10.x), Convolution / Deconvolution: their data
        # input's dtype is the compute precision of the quantized ops.
        if "conv" in str(layer.get("LayerType", "")).lower() and layer.get("Inputs"):
            word = _entry_dtype(layer["Inputs"][0])
            conv_in[word] += 1
            if word != "int8":
                non_int8.append(str(layer.get("Name", "?")))
        for out in layer.get("Outputs", []):
            if isinstance(out, dict) and out.get("Name") in io:
                continue
            word = _entry_dtype(out)
            if word in ("int32", "int64", "bool", "unknown"):
                continue  # shape/index tensors say nothing about compute precision
            counts[word] += 1
            if word != "fp16":
                non_fp16.append(str(layer.get("Name", "?")))
    return EnginePrecision(
        io=dict(io),
        layers=dict(counts),
        non_fp16_layers=non_fp16,
        conv_inputs=dict(conv_in),
        non_int8_convs=non_int8,
    )


def inspect_engine(trt: Any, engine: Any) -> EnginePrecision:
    """I/O dtypes and layer precisions of a deserialized ``ICudaEngine``."""
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        io[name] = dtype_word(str(engine.get_tensor_dtype(name)))
    inspector = engine.create_engine_inspector()
    info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return summarize_engine_info(info, io)


def verify_engine_precision(ep: EnginePrecision, want: str, io_dtype: str, name: str) -> None:
    """Refuse an engine that is not ``want`` inside or whose I/O is not ``io_dtype``.

    Raises:
        P2PError: naming ``name``, what was found and which layers.
    """
    io_word = {"float32": "fp32", "float16": "fp16"}[io_dtype]
    bad_io = {k: v for k, v in ep.io.items() if v != io_word}
    if ep.precision != want or bad_io:
        examples = {"fp16": ep.non_fp16_layers, "int8": ep.non_int8_convs}.get(want, [])
        layers = ", ".join(examples[:5])
        raise P2PError(
            f"{name}: the built engine is not {want} (layers {ep.layers or 'without detailed info'}"
            + (f", I/O {bad_io}" if bad_io else "")
            + (f"; e.g. {layers}" if layers else "")
            + "); refusing to label it so."
        )


# --- GPU identity and sidecar ----------------------------------------------------------------


def plan_name(precision: str) -> str:
    """``model_fp16.plan`` / ``model_fp32.plan`` / ``model_int8.plan``."""
    return f"model_{precision}.plan"


def engine_sidecar(
    onnx_sidecar: ModelSidecar,
    *,
    precision: str,
    profile: BatchProfile,
    trt_version: str,
    gpu_name: str | None,
    compute_capability: str | None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
    extra: dict[str, Any] | None = None,
) -> ModelSidecar:
    """The sidecar of a plan built from the ONNX described by ``onnx_sidecar``."""
    return ModelSidecar(
        kind="tensorrt",
        precision=precision,
        io_dtype=onnx_sidecar.io_dtype,
        generator=onnx_sidecar.generator,
        test_norm=onnx_sidecar.test_norm,
        input_name=onnx_sidecar.input_name,
        output_name=onnx_sidecar.output_name,
        input_shape=list(onnx_sidecar.input_shape),
        output_shape=list(onnx_sidecar.output_shape),
        opset=onnx_sidecar.opset,
        checkpoint_sha256=onnx_sidecar.checkpoint_sha256,
        batch_profile=profile.as_list(),
        tensorrt_version=trt_version,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        hardware_compatible=hardware_compatible,
        version_compatible=version_compatible,
        extra=dict(extra or {}),
    )


def skipped_message(reason: str = "tensorrt is not installed here") -> str:
    """The one sentence printed when the engine is skipped (for want of TensorRT or a GPU)."""
    return f"TensorRT engine skipped: {reason}; to build it: {INSTALL_HINT}."


def no_gpu_message(detail: str = "") -> str:
    """The reason given when TensorRT is installed but cannot create a builder."""
    return "TensorRT found no usable CUDA GPU" + (f" ({detail})" if detail else "")


def create_builder(trt: Any, logger: Any) -> Any:
    """``trt.Builder(logger)``; without a usable GPU the binding raises (a pybind TypeError
    about a nullptr, or a RuntimeError) or returns None.

    Raises:
        NoTensorRTGpu: no builder could be made, with TensorRT's first line.
    """
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NoTensorRTGpu(no_gpu_message(first[:200])) from None
    if builder is None:
        raise NoTensorRTGpu(no_gpu_message())
    return builder


# --- timing cache and plan files -------------------------------------------------------------


def read_timing_cache(path: str | Path | None) -> bytes | None:
    """The timing cache's bytes (``b""`` when the file does not exist yet; None without a path).

    Read before the build, so that a bad path fails in one line before minutes of building.

    Raises:
        P2PError: the path is a folder or the file cannot be read.
    """
    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_file():
        raise P2PError(f"{path}: timing cache path is not a file.")
    if not path.exists():
        return b""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise P2PError(f"{path}: timing cache cannot be read ({exc.strerror or exc}).") from None


def write_timing_cache(path: str | Path, data: bytes) -> bool:
    """Write the timing cache; a failure is a warning (the engine is already written)."""
    try:
        write_bytes(Path(path), data)
    except OSError as exc:
        log.warning("%s: timing cache not saved (%s).", path, exc.strerror or exc)
        return False
    return True


def write_plan(plan_path: str | Path, data: bytes, side: ModelSidecar) -> None:
    """Write the plan and its sidecar as ``export.command._promote`` does for ONNX files: both
    staged in a hidden folder beside ``plan_path``, then moved sidecar first, so a failed write
    never leaves a new plan beside an old sidecar (or a plan without its sidecar)."""
    plan_path = Path(plan_path)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".p2p-engine-", dir=plan_path.parent))
    try:
        staged = stage / plan_path.name
        write_bytes(staged, data)
        side.write(staged)
        os.replace(sidecar_for(staged), sidecar_for(plan_path))
        os.replace(staged, plan_path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --- the build -------------------------------------------------------------------------------


def format_parser_errors(parser: Any) -> str:
    """The ONNX parser's errors in one line: ``desc (node NAME, OP); ...``."""
    parts = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = ""
        name = getattr(err, "node_name", None)
        op = getattr(err, "node_operator", None)
        if callable(name) and name():
            node = f" (node {name()}{', ' + op() if callable(op) and op() else ''})"
        parts.append(f"{err.desc()}{node}")
    return "; ".join(parts) or "no detail given"


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    profile: BatchProfile,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
) -> ModelSidecar:
    """Build ``plan_path`` from ``onnx_path`` (which has a sidecar) and write its sidecar.

    The plan's precision is that of the ONNX (strongly typed) and is verified from the engine.
    Input (N, C, S, S) with N in ``profile``; I/O dtype as the ONNX's.

    Raises:
        MissingDependency: tensorrt is not installed.
        NoTensorRTGpu: tensorrt is installed but finds no usable CUDA GPU.
        P2PError: parser errors, a failed build, an unreadable timing cache, or an engine whose
            precision is not the ONNX's; nothing is written under ``plan_path`` then.
    """
    trt = require("tensorrt")
    features = trt_features(trt.__version__)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    side = ModelSidecar.read(onnx_path)
    cache_path = Path(timing_cache) if timing_cache else None
    cache_data = read_timing_cache(cache_path)
    size, channels = side.image_size, side.generator["in_channels"]

    class _Logger(trt.ILogger):  # keeps TensorRT's errors for the one-line message
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.debug("tensorrt: %s", msg)

    logger = _Logger()
    builder = create_builder(trt, logger)
    network = builder.create_network(network_flags(trt, features))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise P2PError(
            f"{onnx_path}: TensorRT's ONNX parser rejected it: {format_parser_errors(parser)}"
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer dtypes for the check
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(side.input_name, *profile.shapes(channels, size))
    config.add_optimization_profile(opt_profile)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if side.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # TF32 is on by default for convs and matmuls: an engine labelled fp32 must not use it.
        config.clear_flag(trt.BuilderFlag.TF32)
    if cache_path is not None:
        cache = config.create_timing_cache(cache_data)
        if cache is None:
            log.warning(
                "%s: TensorRT cannot use this timing cache; building without it.", cache_path
            )
            cache_path = None
        else:
            config.set_timing_cache(cache, ignore_mismatch=False)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if serialized is None:
        detail = "; ".join(logger.errors[-3:]) or "no detail given"
        raise P2PError(f"{onnx_path}: TensorRT build failed ({detail}).")

    runtime = trt.Runtime(logger)
    if version_compatible:
        runtime.engine_host_code_allowed = True  # a version-compatible plan embeds its runtime
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise P2PError(f"{onnx_path}: TensorRT could not load the engine it just built.")
    ep = inspect_engine(trt, engine)
    verify_engine_precision(ep, side.precision, side.io_dtype, str(plan_path))

    gpu, cc = gpu_identity(0)
    plan_side = engine_sidecar(
        side,
        precision=ep.precision,
        profile=profile,
        trt_version=features.version,
        gpu_name=gpu,
        compute_capability=cc,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
        extra={
            "build_seconds": round(build_s, 2),
            "workspace_gib": workspace_gib,
            "engine_layers": ep.layers,
            "source_onnx": onnx_path.name,
        },
    )
    write_plan(plan_path, bytes(serialized), plan_side)
    if cache_path is not None:  # after the plan: a failing cache write must not lose the engine
        cache = config.get_timing_cache()
        if cache is not None:
            write_timing_cache(cache_path, bytes(cache.serialize()))
    return plan_side
