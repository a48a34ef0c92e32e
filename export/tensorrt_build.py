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
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import write_bytes
from p2p_deploy.deps import require
from p2p_deploy.errors import P2PError
from p2p_deploy.sidecar import ModelSidecar

log = logging.getLogger(__name__)

DEFAULT_BATCH = "1:4:16"
DEFAULT_WORKSPACE_GIB = 4.0
INSTALL_HINT = 'pip install "p2p-deploy[gpu]" (TensorRT 10.x or 11.x, with a CUDA GPU)'


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
            on 11.x strong typing is always on and the network needs no flag.
        explicit_batch_flag: ``EXPLICIT_BATCH`` is deprecated and ignored from 10.0 (explicit
            batch is the only mode), so it is never set by this code.
        has_fp16_builder_flag: ``BuilderFlag.FP16`` exists (10.x only); this code never uses it,
            precision comes from the ONNX types.
        inspector_io_key: where the inspector JSON lists I/O: ``Bindings`` (10.x) or
            ``I/O Tensors`` (11.x).
    """

    version: str
    major: int
    minor: int
    strongly_typed_flag: bool
    explicit_batch_flag: bool
    has_fp16_builder_flag: bool
    inspector_io_key: str


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
        explicit_batch_flag=False,
        has_fp16_builder_flag=major == 10,
        inspector_io_key="Bindings" if major == 10 else "I/O Tensors",
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
    """

    io: dict[str, str] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    non_fp16_layers: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        """``fp16`` / ``fp32`` when all inner layers are, ``mixed``, or ``unknown`` (no layer
        information: the engine was not built with detailed profiling verbosity)."""
        kinds = {k for k, v in self.layers.items() if v}
        if not kinds:
            return "unknown"
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
    non_fp16: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict):  # LAYER_NAMES_ONLY verbosity gives bare names
            continue
        for out in layer.get("Outputs", []):
            if isinstance(out, dict) and out.get("Name") in io:
                continue
            word = _entry_dtype(out)
            if word in ("int32", "int64", "bool", "unknown"):
                continue  # shape/index tensors say nothing about compute precision
            counts[word] += 1
            if word != "fp16":
                non_fp16.append(str(layer.get("Name", "?")))
    return EnginePrecision(io=dict(io), layers=dict(counts), non_fp16_layers=non_fp16)


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
        layers = ", ".join(ep.non_fp16_layers[:5]) if want == "fp16" else ""
        raise P2PError(
            f"{name}: the built engine is not {want} (layers {ep.layers or 'without detailed info'}"
            + (f", I/O {bad_io}" if bad_io else "")
            + (f"; e.g. {layers}" if layers else "")
            + "); refusing to label it so."
        )


# --- GPU identity and sidecar ----------------------------------------------------------------


def gpu_identity() -> tuple[str | None, str | None]:
    """(GPU name, compute capability ``"8.6"``) of device 0 from torch.cuda, else pycuda, else
    cuda-python; (None, None) when none can tell."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return torch.cuda.get_device_name(0), f"{major}.{minor}"
    except Exception:  # noqa: BLE001 - a broken CUDA setup is "unknown", not fatal
        pass
    try:
        import pycuda.driver as drv

        drv.init()
        dev = drv.Device(0)
        major, minor = dev.compute_capability()
        return dev.name(), f"{major}.{minor}"
    except Exception:  # noqa: BLE001
        pass
    try:
        from cuda.bindings import driver as cu

        cu.cuInit(0)
        _, dev = cu.cuDeviceGet(0)
        _, name = cu.cuDeviceGetName(64, dev)
        attr = cu.CUdevice_attribute
        _, major = cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        _, minor = cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        return name.split(b"\0", 1)[0].decode(), f"{major}.{minor}"
    except Exception:  # noqa: BLE001
        return None, None


def plan_name(precision: str) -> str:
    """``model_fp16.plan`` / ``model_fp32.plan``."""
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


def skipped_message() -> str:
    """The one sentence printed when the engine is skipped for want of TensorRT."""
    return f"TensorRT engine skipped: tensorrt is not installed here; to build it: {INSTALL_HINT}."


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
        P2PError: parser errors, a failed build, or an engine whose precision is not the ONNX's;
            nothing is written under ``plan_path`` then.
    """
    trt = require("tensorrt")
    features = trt_features(trt.__version__)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    side = ModelSidecar.read(onnx_path)
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
    builder = trt.Builder(logger)
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
    cache_path = Path(timing_cache) if timing_cache else None
    if cache_path is not None:
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if serialized is None:
        detail = "; ".join(logger.errors[-3:]) or "no detail given"
        raise P2PError(f"{onnx_path}: TensorRT build failed ({detail}).")
    if cache_path is not None:
        write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))

    runtime = trt.Runtime(logger)
    if version_compatible:
        runtime.engine_host_code_allowed = True  # a version-compatible plan embeds its runtime
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise P2PError(f"{onnx_path}: TensorRT could not load the engine it just built.")
    ep = inspect_engine(trt, engine)
    verify_engine_precision(ep, side.precision, side.io_dtype, str(plan_path))

    gpu, cc = gpu_identity()
    write_bytes(plan_path, bytes(serialized))
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
    plan_side.write(plan_path)
    return plan_side
