"""ONNX -> TensorRT ``.plan`` for TensorRT 10.x and 11.x, built with Polygraphy, verified, checked.

The build goes through Polygraphy's loaders (``polygraphy.backend.trt``: ``NetworkFromOnnxPath``
with ``strongly_typed=True``, ``CreateConfig``, ``EngineBytesFromNetwork``, ``EngineFromBytes``):
NVIDIA's maintained front end, which follows each TensorRT release (TensorRT 11 removed weak
typing and ``BuilderFlag.FP16``; Polygraphy sets the flags each version needs). Precision comes
from the ONNX graph's own types and is verified three times (:mod:`.trt_precision`): from the
strongly typed network before the build, from the engine's I/O dtypes, and from the engine
inspector's layer information read with an execution context attached. Then the engine runs
on the parity inputs against ONNX Runtime fp32 (:mod:`.trt_parity`) before it is moved under
its final name; a failure at any step leaves no new plan there.

Everything that does not need the ``tensorrt`` module (batch profiles, version checks,
precision logic, cards, timing-cache files, messages) is plain Python, tested without a GPU.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import StagedFiles, write_bytes
from p2p_deploy.deps import require
from p2p_deploy.errors import MissingDependency, P2PError, first_line
from p2p_deploy.gpu import gpu_identity
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.layout import card_path

log = logging.getLogger(__name__)

DEFAULT_BATCH = "1:4:16"
DEFAULT_WORKSPACE_GIB = 4.0
INSTALL_HINT = (
    'pip install "p2p-deploy[gpu]" (TensorRT 10, CUDA 12; "p2p-deploy[gpu-trt11]" for '
    "TensorRT 11, CUDA 13; with a CUDA GPU)"
)


class NoTensorRTGpu(P2PError):
    """TensorRT is installed but cannot create a builder: no usable CUDA GPU (or driver)."""


class NoCudaBuffers(MissingDependency):
    """TensorRT and a GPU are there, but nothing can hand the engine CUDA buffers for its
    parity run: torch is a CPU build (or absent) and pycuda is not installed."""


CUDA_BUFFERS_HINT = 'pip install "p2p-deploy[pycuda]" (needs the CUDA toolkit) or a CUDA torch'


def check_can_verify_engines() -> None:
    """Refuse, before any build starts, a machine where a built engine could not be checked.

    Every plan runs through the TensorRT runner on the parity inputs before it gets its name
    (:mod:`.trt_parity`), and the runner's buffers are torch CUDA tensors or pycuda
    (:func:`p2p_deploy.runners.trt_memory.open_memory`). With CPU torch and no pycuda the
    engine would build for minutes and then be discarded; this says so first, in one line.
    Call it before the ONNX exports too when an engine will be built.

    Raises:
        NoCudaBuffers: neither torch with CUDA nor pycuda is usable.
    """
    from p2p_deploy.deps import available
    from p2p_deploy.runners.trt_memory import torch_cuda_available

    if torch_cuda_available() or available("pycuda.driver"):
        return
    raise NoCudaBuffers(
        "no CUDA buffers for the engine's parity run: torch has no CUDA and pycuda is not "
        f"installed ({CUDA_BUFFERS_HINT}); nothing was built"
    )


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


# --- TensorRT version --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrtFeatures:
    """The TensorRT version: ``version`` (e.g. ``10.3.0``), ``major`` and ``minor``. Nothing
    here depends on it beyond the floor (10: name-based I/O, strong typing): Polygraphy picks
    the network flags each version needs."""

    version: str
    major: int
    minor: int


def trt_features(version: str) -> TrtFeatures:
    """Parse ``tensorrt.__version__``.

    Raises:
        P2PError: unparsable, or older than 10.0.
    """
    m = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if not m:
        raise P2PError(f"cannot read the TensorRT version {version!r}.")
    major, minor = int(m.group(1)), int(m.group(2))
    if major < 10:
        raise P2PError(
            f"TensorRT {version} is too old: p2p needs TensorRT 10.x or 11.x ({INSTALL_HINT})."
        )
    if major >= 12:
        log.warning("TensorRT %s is newer than the 10.x/11.x this code was written for", version)
    return TrtFeatures(version=str(version).strip(), major=major, minor=minor)


# --- cards and messages ----------------------------------------------------------------------


def plan_name(precision: str) -> str:
    """``model_fp16.plan`` / ``model_fp32.plan``."""
    return f"model_{precision}.plan"


def engine_card(
    onnx_card: ExportCard,
    *,
    precision: str,
    profile: BatchProfile,
    trt_version: str,
    gpu_name: str | None,
    compute_capability: str | None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
    extra: dict[str, Any] | None = None,
) -> ExportCard:
    """The card of a plan built from the ONNX described by ``onnx_card``: the ONNX's card
    (generator, direction, training, I/O, opset, source sha256) with the engine's facts."""
    return ExportCard.of(
        onnx_card,
        kind="tensorrt",
        precision=precision,
        batch_profile=profile.as_list(),
        tensorrt_version=trt_version,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        hardware_compatible=hardware_compatible,
        version_compatible=version_compatible,
        extra=dict(extra or {}),
    )


def skipped_message(reason: str) -> str:
    """The one sentence printed when the engine is skipped (for want of TensorRT or a GPU)."""
    return f"TensorRT engine skipped: {reason}; to build it: {INSTALL_HINT}."


def no_gpu_message(detail: str = "") -> str:
    """The reason given when TensorRT is installed but cannot create a builder."""
    return "TensorRT found no usable CUDA GPU" + (f" ({detail})" if detail else "")


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


def write_plan(
    plan_path: str | Path,
    data: bytes,
    card: ExportCard,
    check: Callable[[Path], dict[str, Any]] | None = None,
) -> ExportCard:
    """Write the plan and its card as the exporter writes ONNX files: both
    staged in a hidden folder beside ``plan_path``, then moved card first, so a failed write
    never leaves a new plan beside an old card (or a plan without its card).

    ``check(staged_plan)`` runs on the staged pair before the move (the engine parity run);
    what it returns is added to the card's ``extra``; when it raises, nothing is moved and
    nothing new is left under ``plan_path``. Returns the card written.
    """
    plan_path = Path(plan_path)
    with StagedFiles(plan_path.parent, stem="p2p-engine") as stage:
        staged = stage.path / plan_path.name
        write_bytes(staged, data)
        card.write(staged)
        if check is not None:
            card = dataclasses.replace(card, extra={**card.extra, **check(staged)})
            card.write(staged)
        stage.promote(card_path(staged), staged)
    return card


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


def parser_errors(trt: Any, onnx_path: Path) -> str:
    """Parse ``onnx_path`` again, only to name what the parser rejected: Polygraphy's
    ``NetworkFromOnnxPath`` logs the parser's errors to its own logger and raises "Could not
    parse ONNX correctly" without them (polygraphy/backend/trt/util.py,
    ``check_onnx_parser_errors``). The network is strongly typed as in the build (Polygraphy's
    ``CreateNetwork``): a weakly typed re-parse would not meet the errors that only strong
    typing raises (TensorRT 10) and would name none."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = create_builder(trt, logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(1 << int(flag) if flag is not None else 0)
    parser = trt.OnnxParser(network, logger)
    parser.parse_from_file(str(onnx_path))
    return format_parser_errors(parser)


def create_builder(trt: Any, logger: Any) -> Any:
    """``trt.Builder(logger)``; without a usable GPU the binding raises (a pybind TypeError
    about a nullptr, or a RuntimeError) or returns None.

    Raises:
        NoTensorRTGpu: no builder could be made, with TensorRT's first line.
    """
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as exc:
        raise NoTensorRTGpu(no_gpu_message(first_line(exc, 200))) from None
    if builder is None:
        raise NoTensorRTGpu(no_gpu_message())
    return builder


def attach_timing_cache(config: Any, data: bytes, path: Path) -> bool:
    """Load ``data`` as ``config``'s timing cache; False (with a warning, the build going on
    without it) when TensorRT refuses it. ``create_timing_cache`` returns None on bad bytes and
    ``set_timing_cache(..., ignore_mismatch=False)`` returns False for a cache made on another
    GPU or TensorRT version; Polygraphy's ``CreateConfig`` (backend/trt/config.py) does not
    check that result, hence this step instead of its ``load_timing_cache``."""
    try:
        cache = config.create_timing_cache(data)
    except (RuntimeError, TypeError, ValueError) as exc:  # damaged bytes: refused, not fatal
        log.debug("%s: create_timing_cache raised %s", path, exc)
        cache = None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return True
    log.warning(
        "%s: TensorRT cannot use this timing cache (other GPU or version); "
        "building without it, a new one will be written",
        path,
    )
    fresh = config.create_timing_cache(b"")
    if fresh is None or not config.set_timing_cache(fresh, ignore_mismatch=False):
        raise P2PError(f"{path}: TensorRT could not start an empty timing cache.")
    return False


def inspect_engine(trt: Any, engine: Any, input_name: str, opt_shape: tuple[int, ...]) -> str:
    """``get_engine_information(JSON)`` with an execution context attached and its input shape
    set to the profile's opt shape: without a context, a dynamic-shape engine prints "N/A due
    to dynamic shapes" for every tensor (TensorRT docs, "Engine Inspector"; Polygraphy's
    ``inspect model`` does the same in tools/inspect/subtool/model/extractors/_trt.py). The
    JSON is read while the context lives."""
    context = engine.create_execution_context()
    if context is None:
        raise P2PError("TensorRT could not create an execution context to inspect the engine.")
    if not context.set_input_shape(input_name, opt_shape):
        raise P2PError(f"TensorRT refused the input shape {opt_shape} of its own profile.")
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    del inspector, context
    return str(info)


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    profile: BatchProfile,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
    reference_onnx: str | Path | None = None,
) -> ExportCard:
    """Build ``plan_path`` from ``onnx_path`` (which has a card) and write its card.

    The plan's precision is that of the ONNX (strongly typed), verified before and after the
    build. Input (N, C, S, S) with N in ``profile``; I/O dtype as the ONNX's. Then the engine
    runs on the parity inputs against ONNX Runtime on ``reference_onnx`` (the fp32 export;
    ``onnx_path`` itself when None, as for the INT8 plan): fp16 PSNR >= 40 dB, fp32 max abs
    err <= 1e-3, int8 PSNR >= 30 dB against its own graph (:mod:`.trt_parity`); figures and
    the reference's name in the card (``extra.engine_parity``).

    Raises:
        MissingDependency: tensorrt or polygraphy is not installed.
        NoTensorRTGpu: tensorrt is installed but finds no usable CUDA GPU.
        NoCudaBuffers: the parity run would have no CUDA buffers (no CUDA torch, no
            pycuda): said before the build (:func:`check_can_verify_engines`).
        P2PError: parser errors, a failed build, an unreadable timing cache, an engine whose
            precision is not the ONNX's, or failed parity; nothing new is written under
            ``plan_path`` then.
    """
    trt = require("tensorrt")
    features = trt_features(trt.__version__)
    poly = require("polygraphy.backend.trt")
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    from p2p_deploy.export.trt_parity import check_engine_parity
    from p2p_deploy.export.trt_precision import (
        inspector_verdict,
        io_verdict,
        network_layers,
        network_verdict,
        read_inspector,
    )
    from p2p_deploy.export.trt_profile import describe_profile, profile_shapes

    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    card = read_export_card(onnx_path)
    cache_path = Path(timing_cache) if timing_cache else None
    cache_data = read_timing_cache(cache_path)
    create_builder(trt, trt.Logger(trt.Logger.ERROR))  # no GPU: one sentence, before Polygraphy
    check_can_verify_engines()  # an engine nothing could check: said before minutes of build
    want = card.precision
    # N from the batch profile; H, W from the card's spatial profile, else S x S (trt_profile).
    shapes = profile_shapes(profile.as_list(), card)

    # Polygraphy's INFO lines are not the user's; its TensorRT logger (get_trt_logger) maps
    # TensorRT's warnings to Polygraphy warnings, dropped at this verbosity.
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        try:
            builder, network, parser = poly.NetworkFromOnnxPath(
                str(onnx_path), strongly_typed=True
            )()
        except PolygraphyException:
            raise P2PError(
                f"{onnx_path}: TensorRT's ONNX parser rejected it: {parser_errors(trt, onnx_path)}"
            ) from None
        if want == "int8":  # the QDQ graph: evidence of its own (export/int8_engine.py)
            from p2p_deploy.export.int8_engine import int8_network_verdict, network_convs

            net_record = int8_network_verdict(network_convs(network), str(onnx_path))
        else:
            net_record = network_verdict(network_layers(network), want, str(onnx_path))
        try:
            config = poly.CreateConfig(
                profiles=[poly.Profile().add(card.input_name, *shapes)],
                memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_gib * (1 << 30))},
                # Layer dtypes for the inspector record (polygraphy CreateConfig docs).
                profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
                # TF32 would compute "fp32" convolutions with 10-bit mantissas: off, as is
                # Polygraphy's default (CreateConfig(tf32=False) clears BuilderFlag.TF32).
                tf32=False,
                version_compatible=version_compatible or None,
                hardware_compatibility_level=(
                    trt.HardwareCompatibilityLevel.AMPERE_PLUS if hardware_compatible else None
                ),
            )(builder, network)
            # Polygraphy's CreateConfig ignores add_optimization_profile's result (-1 on an
            # invalid profile; backend/trt/config.py): check the profile is really there.
            if config.num_optimization_profiles != 1:
                raise P2PError(
                    f"{onnx_path}: TensorRT refused the profile {describe_profile(shapes)} "
                    f"for input {card.input_name!r}."
                )
            if cache_path is not None:
                attach_timing_cache(config, cache_data or b"", cache_path)
            t0 = time.perf_counter()
            serialized = poly.EngineBytesFromNetwork((builder, network, parser), config=config)()
            build_s = time.perf_counter() - t0
            plan_bytes = bytes(serialized)
            # EngineFromBytes sets runtime.engine_host_code_allowed (version-compatible plans).
            engine = poly.EngineFromBytes(plan_bytes)()
        except PolygraphyException as exc:
            raise P2PError(f"{onnx_path}: TensorRT build failed ({first_line(exc)}).") from None

        io = {
            engine.get_tensor_name(i): str(engine.get_tensor_dtype(engine.get_tensor_name(i)))
            for i in range(engine.num_io_tensors)
        }
        io_words = io_verdict(io, card.io_dtype, str(plan_path))
        info = inspect_engine(trt, engine, card.input_name, shapes[1])
        if want == "int8":
            from p2p_deploy.export.int8_engine import int8_inspector_verdict, read_int8_inspector

            record = read_int8_inspector(info)
            int8_inspector_verdict(record, str(plan_path))
        else:
            record = read_inspector(info, want)
            inspector_verdict(record, want, str(plan_path))
        # The timing cache is read now, so that everything Polygraphy made (builder, network,
        # parser, config, the engine and the runtime it holds) is freed before the parity run
        # below makes its own runtime: TensorRT warns when a runtime's logger differs from the
        # one of a live builder or runtime.
        cache_bytes = _timing_cache_bytes(config) if cache_path is not None else None
        del engine, serialized, config, builder, network, parser

    gpu, cc = gpu_identity(0)
    plan_card = engine_card(
        card,
        precision=want,
        profile=profile,
        trt_version=features.version,
        gpu_name=gpu,
        compute_capability=cc,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
        extra={
            "build_seconds": round(build_s, 2),
            "workspace_gib": workspace_gib,
            "source_onnx": onnx_path.name,
            "builder": "polygraphy",
            "precision_evidence": {
                "network": net_record,
                "io": io_words,
                "inspector": record.to_dict(),
            },
        },
    )
    reference = Path(reference_onnx) if reference_onnx else onnx_path

    def parity(staged: Path) -> dict[str, Any]:
        try:
            report = check_engine_parity(staged, reference, profile)
        except MissingDependency as exc:
            # Not "tensorrt is missing" (the caller's reading of MissingDependency): the
            # engine built, but the runner needs CUDA buffers to check it.
            raise P2PError(
                f"{plan_path}: built, but its parity run needs torch with CUDA or pycuda "
                f"({CUDA_BUFFERS_HINT}): {exc}"
            ) from None
        report.model = str(plan_path)
        if not report.passed:
            raise P2PError(f"{plan_path}: engine parity check failed: {report.summary()}")
        return {"engine_parity": {**report.to_dict(), "reference": reference.name}}

    # Inside Polygraphy's verbosity guard too: TensorRT's warnings while a second logger takes
    # over (the runner's) may still reach Polygraphy's logger.
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        plan_card = write_plan(plan_path, plan_bytes, plan_card, check=parity)
    if cache_bytes is not None:  # after the plan: a failing cache write must not lose the engine
        write_timing_cache(cache_path, cache_bytes)
    return plan_card


def _timing_cache_bytes(config: Any) -> bytes | None:
    """The build's timing cache, serialized (``IBuilderConfig.get_timing_cache()``; None when
    the config has none)."""
    cache = config.get_timing_cache()
    return bytes(cache.serialize()) if cache is not None else None
