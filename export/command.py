"""``run_export``: checkpoint -> ONNX fp32 (+ fp16) -> parity -> TensorRT plans -> Triton.

Every model is written into a staging folder inside ``out_dir`` first and moved under its final
name only after its checks passed, so a failed export never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2p_deploy.deps import available
from p2p_deploy.errors import MissingDependency, P2PError
from p2p_deploy.export.tensorrt_build import (
    DEFAULT_BATCH,
    DEFAULT_WORKSPACE_GIB,
    INSTALL_HINT,
    BatchProfile,
    NoTensorRTGpu,
    parse_batch_profile,
    plan_name,
    skipped_message,
)
from p2p_deploy.sidecar import ModelSidecar, sidecar_for

if TYPE_CHECKING:
    from p2p_deploy.export.int8_export import Int8Options
    from p2p_deploy.export.parity import ParityReport

log = logging.getLogger(__name__)

ONNX_NAMES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx"}
IO_CHOICES = {"fp32": "float32", "fp16": "float16"}


@dataclass
class ExportResult:
    """What ``run_export`` wrote and found.

    Attributes:
        files: every model and sidecar written under ``out_dir`` (and the Triton config).
        models: model files only (``model.onnx``, ``model_fp16.onnx``, ``model_fp16.plan``...).
        parity: one report per ONNX checked (empty with ``skip_parity``).
        notes: sentences for the user (e.g. the engine was skipped and how to install TensorRT).
        seconds: wall time per stage (``load``, ``onnx_fp32``, ``parity_fp32``, ...).
    """

    files: list[Path] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)
    parity: list[ParityReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    int8: Any = None  # the Int8Result of --int8 (gate figure, calibration), else None


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and check a file can be written there.

    Raises:
        P2PError: it is a file, cannot be created, or is not writable.
    """
    if path.exists() and not path.is_dir():
        raise P2PError(f"{path}: output path exists and is not a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".p2p-write-test-"):
            pass
    except OSError as exc:
        raise P2PError(
            f"{path}: output folder cannot be written ({exc.strerror or exc})."
        ) from None


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A hidden temporary folder inside ``out_dir`` (same file system: renames are atomic)."""
    stage = Path(tempfile.mkdtemp(prefix=".p2p-export-", dir=out_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _promote(staged: Path, out_dir: Path) -> list[Path]:
    """Move a staged model and its sidecar into ``out_dir`` (sidecar first: a reader that finds
    the model always finds its matching sidecar)."""
    final = out_dir / staged.name
    os.replace(sidecar_for(staged), sidecar_for(final))
    os.replace(staged, final)
    return [final, sidecar_for(final)]


def run_export(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    fp16: bool = False,
    io: str = "fp32",
    opset: int = 17,
    batch: str | BatchProfile = DEFAULT_BATCH,
    test_norm: str | None = None,
    engine: bool | None = None,
    fp32_engine: bool = False,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
    triton_dir: str | Path | None = None,
    triton_model_name: str = "p2p_generator",
    skip_parity: bool = False,
    on_step: Callable[[str], None] | None = None,
    int8: Int8Options | None = None,
) -> ExportResult:
    """Export a generator checkpoint; the function behind ``p2p export``.

    Args:
        checkpoint: run folder, ``.safetensors`` (+ ``.json``), or canonical ``latest_net_G.pth``.
        out_dir: folder for ``model.onnx`` (always), ``model_fp16.onnx`` and ``model_fp16.plan``
            (with ``fp16``), ``model_fp32.plan`` (with ``fp32_engine``), each with ``<name>.json``.
        fp16: also export the fp16 ONNX and (TensorRT permitting) the FP16 engine.
        io: I/O dtype of the fp16 model, ``fp32`` (Casts inside the graph) or ``fp16``.
        opset: ONNX opset (>= 17).
        batch: TensorRT batch profile ``MIN:OPT:MAX``; its max is Triton's max batch size.
        test_norm: ``stats`` / ``running``; default: ``stats`` for batch norm.
        engine: ``None`` = build the FP16 engine when ``fp16`` and TensorRT is installed (skipped
            with a note otherwise); ``True`` = required (implies ``fp16``; missing TensorRT is an
            error); ``False`` = never.
        fp32_engine: also build ``model_fp32.plan`` (required: missing TensorRT is an error).
        workspace_gib / timing_cache / version_compatible / hardware_compatible: TensorRT build.
        triton_dir: also write a Triton model repository there (the best model exported).
        skip_parity: skip the ONNX Runtime parity checks.
        on_step: called with a short description before each stage (for progress display).
        int8: also write ``model_int8.onnx`` (QDQ, calibrated, quality-gated; see
            export/int8_export.py) and, TensorRT and a GPU permitting, ``model_int8.plan``.
    Raises:
        P2PError (CheckpointError, MissingDependency, ...): a one-line reason.
    """
    import torch

    from p2p_deploy.checkpoint import file_sha256, load_generator
    from p2p_deploy.export.onnx_export import check_opset, export_onnx
    from p2p_deploy.export.parity import check_onnx_parity
    from p2p_deploy.models.inference import prepare_generator

    step = on_step or (lambda _msg: None)
    result = ExportResult()
    profile = batch if isinstance(batch, BatchProfile) else parse_batch_profile(batch)
    if io not in IO_CHOICES:
        raise P2PError(f"--io {io!r}: use fp32 or fp16.")
    check_opset(opset)  # before out_dir is created: a bad flag leaves nothing behind
    if not workspace_gib > 0:
        raise P2PError(f"--workspace {workspace_gib}: must be a positive number of GiB.")
    if engine:
        fp16 = True
    if io == "fp16" and not fp16:
        raise P2PError("--io fp16 needs --fp16 (the fp32 model has float32 input/output).")

    if int8 is not None:
        from p2p_deploy.export.int8_export import check_options

        check_options(int8)
    missing = [m for m in ("tensorrt", "polygraphy") if not available(m)]
    if (engine or fp32_engine) and missing:
        # Asked for explicitly: fail before spending minutes on exports that were not the point.
        which = "model_fp32.plan" if fp32_engine and not engine else "model_fp16.plan"
        raise MissingDependency(
            f"{which} was asked for, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed here: {INSTALL_HINT}."
        )

    t = time.perf_counter()
    step("loading checkpoint")
    loaded = load_generator(checkpoint)  # before touching out_dir: a bad checkpoint writes nothing
    sha = file_sha256(loaded.path)
    result.seconds["load"] = time.perf_counter() - t
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir)

    precisions = ["fp32"] + (["fp16"] if fp16 else [])
    finals: dict[str, Path] = {}
    reference = None  # the eager fp32 module in the exports' test-norm mode, built once
    with _staging(out_dir) as stage:
        for prec in precisions:
            t = time.perf_counter()
            step(f"exporting {ONNX_NAMES[prec]}")
            staged = stage / ONNX_NAMES[prec]
            side = export_onnx(
                loaded.model,
                staged,
                precision=prec,
                test_norm=test_norm,
                opset=opset,
                io_dtype=IO_CHOICES[io] if prec == "fp16" else "float32",
                checkpoint_sha256=sha,
            )
            result.seconds[f"onnx_{prec}"] = time.perf_counter() - t
            if not skip_parity:
                t = time.perf_counter()
                step(f"parity check of {ONNX_NAMES[prec]}")
                if reference is None:
                    with torch.inference_mode():
                        reference = prepare_generator(loaded.model, side.test_norm)
                # Raises naming the model and the figure when it fails; nothing is promoted.
                report = check_onnx_parity(staged, reference)
                report.model = str(out_dir / staged.name)
                result.parity.append(report)
                result.seconds[f"parity_{prec}"] = time.perf_counter() - t
                side = dataclasses.replace(side, extra={**side.extra, "parity": report.to_dict()})
                side.write(staged)
            written = _promote(staged, out_dir)
            finals[prec] = written[0]
            result.files += written
            result.models.append(written[0])
        if int8 is not None:  # the INT8 step lives in export/int8_export.py
            from p2p_deploy.export.int8_export import export_int8_onnx

            finals["int8"] = export_int8_onnx(result, finals["fp32"], stage, loaded, int8, step)

    plans = _build_engines(
        result,
        finals,
        out_dir,
        profile,
        engine=engine,
        fp16=fp16,
        fp32_engine=fp32_engine,
        workspace_gib=workspace_gib,
        timing_cache=timing_cache,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
        step=step,
    )
    if "int8" in finals and engine is not False:
        from p2p_deploy.export.int8_export import export_int8_plan

        export_int8_plan(
            result,
            finals,
            int8,
            step,
            profile=profile,
            workspace_gib=workspace_gib,
            timing_cache=timing_cache,
            version_compatible=version_compatible,
            hardware_compatible=hardware_compatible,
        )
    if triton_dir is not None:
        from p2p_deploy.export.triton import write_triton_repository

        best = plans.get("fp16") or plans.get("fp32") or finals.get("fp16") or finals["fp32"]
        step(f"writing Triton repository for {best.name}")
        config = write_triton_repository(
            best,
            triton_dir,
            model_name=triton_model_name,
            max_batch_size=profile.max,
            preferred_batch_sizes=[profile.opt, profile.max],
        )
        result.files.append(config)
    return result


def _build_engines(
    result: ExportResult,
    onnx_files: dict[str, Path],
    out_dir: Path,
    profile: BatchProfile,
    *,
    engine: bool | None,
    fp16: bool,
    fp32_engine: bool,
    workspace_gib: float,
    timing_cache: str | Path | None,
    version_compatible: bool,
    hardware_compatible: bool,
    step: Callable[[str], None],
) -> dict[str, Path]:
    """Build the requested plans; returns precision -> plan path."""
    wanted: list[tuple[str, bool]] = []  # (precision, required)
    if fp16 and engine is not False:
        wanted.append(("fp16", bool(engine)))
    if fp32_engine:
        wanted.append(("fp32", True))
    plans: dict[str, Path] = {}
    if not wanted:
        return plans
    from p2p_deploy.export.tensorrt_build import build_engine

    for prec, required in wanted:
        plan = out_dir / plan_name(prec)
        step(f"building TensorRT engine {plan.name}")
        t = time.perf_counter()
        try:
            build_engine(
                onnx_files[prec],
                plan,
                profile=profile,
                workspace_gib=workspace_gib,
                timing_cache=timing_cache,
                version_compatible=version_compatible,
                hardware_compatible=hardware_compatible,
                reference_onnx=onnx_files["fp32"],  # engine parity against ONNX Runtime fp32
            )
        except MissingDependency as exc:  # tensorrt or polygraphy (named in its message)
            what = str(exc).split(" (")[0]  # "tensorrt is not installed"
            if required:
                raise MissingDependency(
                    f"{plan.name} was asked for, but {what} here: {INSTALL_HINT}."
                ) from None
            result.notes.append(skipped_message(f"{what} here"))
            return plans
        except NoTensorRTGpu as exc:
            if required:
                raise NoTensorRTGpu(f"{plan.name} was asked for, but {exc}.") from None
            result.notes.append(skipped_message(str(exc)))
            return plans
        result.seconds[f"engine_{prec}"] = time.perf_counter() - t
        plans[prec] = plan
        result.files += [plan, sidecar_for(plan)]
        result.models.append(plan)
        log.info("built %s (%s)", plan, ModelSidecar.read(plan).precision)
    return plans
