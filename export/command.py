"""``run_export``: checkpoint -> ONNX fp32 (+ fp16) -> parity -> TensorRT plans -> Triton.

Every model is written into a staging folder inside ``out_dir`` first and moved under its final
name only after its checks passed, so a failed export never leaves a file that looks finished.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2p_deploy.atomic import StagedFiles, check_writable_dir
from p2p_deploy.deps import available
from p2p_deploy.errors import MissingDependency, P2PError, UsageError
from p2p_deploy.export.options import IO_CHOICES, ExportOptions
from p2p_deploy.export.tensorrt_build import (
    INSTALL_HINT,
    BatchProfile,
    NoTensorRTGpu,
    parse_batch_profile,
    plan_name,
    skipped_message,
)
from p2p_deploy.models.card import read_export_card
from p2p_deploy.models.layout import card_path

if TYPE_CHECKING:
    from p2p_deploy.export.calibration import SyntheticProvider
    from p2p_deploy.export.parity import ParityReport

log = logging.getLogger(__name__)

ONNX_NAMES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx"}
# Every model an export writes, whatever the precision: model.onnx, model_fp16.plan, ...
MODEL_FILE = re.compile(r"model(_\w+)?\.(onnx|plan|engine)")


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


def existing_export(out_dir: Path) -> list[Path]:
    """The model files of an earlier export in ``out_dir`` (``model*.onnx``, ``model*.plan``,
    whatever the precision) and their sidecars."""
    if not out_dir.is_dir():
        return []
    models = [p for p in out_dir.iterdir() if p.is_file() and MODEL_FILE.fullmatch(p.name)]
    return sorted({*models, *(card_path(p) for p in models if card_path(p).exists())})


def _other_checkpoints(models: list[Path], sha: str) -> list[Path]:
    """The models among ``models`` not exported from the checkpoint whose sha256 is ``sha``
    (a model without a readable sidecar counts as another's)."""
    others = []
    for model in models:
        try:
            same = read_export_card(model).checkpoint_sha256 == sha
        except P2PError:
            same = False
        if not same:
            others.append(model)
    return others


def _check_outputs(opts: ExportOptions, sha: str) -> None:
    """Every output is checked before any work: --out, --triton, and an earlier export of
    another checkpoint (``sha``: this checkpoint's sha256)."""
    check_writable_dir(opts.out, "--out")
    if opts.triton is not None:
        check_writable_dir(opts.triton, "--triton")
    old = [p for p in existing_export(opts.out) if p.suffix != ".json"]
    others = _other_checkpoints(old, sha)
    if others and not opts.overwrite:
        raise UsageError(
            f"{opts.out}: holds an export of another checkpoint "
            f"({', '.join(p.name for p in others)}); give --overwrite to replace that whole "
            "set, or choose another --out (one folder never mixes the models of two exports)."
        )


def run_export(
    opts: ExportOptions,
    on_step: Callable[[str], None] | None = None,
    synthetic: SyntheticProvider | None = None,
) -> ExportResult:
    """Export a generator checkpoint as ``opts`` says; the function behind ``p2p export``.

    Writes into ``opts.out``: ``model.onnx`` (always), ``model_fp16.onnx`` and
    ``model_fp16.plan`` (with ``fp16``), ``model_fp32.plan`` (with ``fp32_engine``),
    ``model_int8.onnx`` and ``model_int8.plan`` (with ``int8``; see export/int8_export.py), each
    with ``<name>.json``. ``synthetic`` draws INT8 calibration images for a synthetic run (the
    CLI passes train's generator: export may not import train). An earlier export there of
    another checkpoint is refused unless ``opts.overwrite``; an earlier export's models (all of
    them) are removed just before the new ones are moved in, so the folder never holds models
    of two exports. ``on_step`` is called with a short description before each stage.

    Raises:
        P2PError (UsageError, CheckpointError, MissingDependency, ...): a one-line reason.
    """
    import torch

    from p2p_deploy.export.onnx_export import check_opset, export_onnx
    from p2p_deploy.export.parity import check_onnx_parity
    from p2p_deploy.models.inference import prepare_generator
    from p2p_deploy.models.opening import open_model

    step = on_step or (lambda _msg: None)
    result = ExportResult()
    try:
        profile = parse_batch_profile(opts.batch)
        check_opset(opts.opset)  # before out is created: a bad flag leaves nothing behind
    except P2PError as exc:
        raise UsageError(str(exc)) from None
    int8 = None
    if opts.with_int8:
        from p2p_deploy.export.int8_export import Int8Options, check_options

        int8 = Int8Options(calib_dir=opts.calib, calib_count=opts.calib_count, synthetic=synthetic)
        try:
            check_options(int8)
        except P2PError as exc:
            raise UsageError(str(exc)) from None
    missing = [m for m in ("tensorrt", "polygraphy") if not available(m)]
    if (opts.engine or opts.fp32_engine) and missing:
        # Asked for explicitly: fail before spending minutes on exports that were not the point.
        which = "model_fp32.plan" if opts.fp32_engine and not opts.engine else "model_fp16.plan"
        raise MissingDependency(
            f"{which} was asked for, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed here: {INSTALL_HINT}."
        )
    t = time.perf_counter()
    step("loading checkpoint")
    # Read (and hashed) once, before touching out: a bad one writes nothing.
    checkpoint = open_model(opts.checkpoint)
    if not checkpoint.is_checkpoint:
        raise UsageError(
            f"{opts.checkpoint}: an exported {checkpoint.kind} model; p2p export reads a "
            "checkpoint (run folder, .safetensors, latest_net_G.pth)."
        )
    assert checkpoint.card is not None
    sha = checkpoint.card.checkpoint_sha256 or ""
    _check_outputs(opts, sha)
    generator = checkpoint.generator()
    result.seconds["load"] = time.perf_counter() - t
    out_dir = Path(opts.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    finals: dict[str, Path] = {}
    reference = None  # the eager fp32 module in the exports' test-norm mode, built once
    with StagedFiles(out_dir, stem="p2p-export") as stage:
        staged_models = []
        for prec in opts.precisions:
            t = time.perf_counter()
            step(f"exporting {ONNX_NAMES[prec]}")
            staged = stage.path / ONNX_NAMES[prec]
            side = export_onnx(
                generator,
                staged,
                precision=prec,
                test_norm=opts.test_norm,
                opset=opts.opset,
                io_dtype=IO_CHOICES[opts.io] if prec == "fp16" else "float32",
                card=checkpoint.card,
            )
            result.seconds[f"onnx_{prec}"] = time.perf_counter() - t
            if not opts.skip_parity:
                t = time.perf_counter()
                step(f"parity check of {ONNX_NAMES[prec]}")
                if reference is None:
                    with torch.inference_mode():
                        reference = prepare_generator(generator, side.test_norm)
                # Raises naming the model and the figure when it fails; nothing is promoted.
                report = check_onnx_parity(staged, reference)
                report.model = str(out_dir / staged.name)
                result.parity.append(report)
                result.seconds[f"parity_{prec}"] = time.perf_counter() - t
                side = dataclasses.replace(side, extra={**side.extra, "parity": report.to_dict()})
                side.write(staged)
            staged_models.append((prec, staged))
        # Every new model passed its checks: only now the earlier export goes, as a whole.
        for old in existing_export(out_dir):
            old.unlink()
        for prec, staged in staged_models:
            # Sidecar first: a reader that finds the model always finds its sidecar.
            side_final, final = stage.promote(card_path(staged), staged)
            finals[prec] = final
            result.files += [final, side_final]
            result.models.append(final)
        if int8 is not None:  # the INT8 step lives in export/int8_export.py
            from p2p_deploy.export.int8_export import export_int8_onnx

            finals["int8"] = export_int8_onnx(
                result, finals["fp32"], stage.path, checkpoint, int8, step
            )

    plans = _build_engines(result, finals, out_dir, profile, opts, step)
    if int8 is not None and "int8" in finals and opts.engine is not False:
        from p2p_deploy.export.int8_export import export_int8_plan

        export_int8_plan(
            result,
            finals,
            int8,
            step,
            **_build_options(opts, profile),
        )
    if opts.triton is not None:
        from p2p_deploy.export.triton import write_triton_repository

        best = plans.get("fp16") or plans.get("fp32") or finals.get("fp16") or finals["fp32"]
        step(f"writing Triton repository for {best.name}")
        config = write_triton_repository(
            best,
            opts.triton,
            model_name=opts.triton_name,
            max_batch_size=profile.max,
            preferred_batch_sizes=[profile.opt, profile.max],
        )
        result.files.append(config)
    return result


def _build_options(opts: ExportOptions, profile: BatchProfile) -> dict[str, Any]:
    """``build_engine``'s keyword arguments from the export options (every plan: fp16, fp32,
    int8, is built the same way)."""
    return {
        "profile": profile,
        "workspace_gib": opts.workspace,
        "timing_cache": opts.timing_cache,
        "version_compatible": opts.version_compatible,
        "hardware_compatible": opts.hardware_compatible,
    }


def _build_engines(
    result: ExportResult,
    onnx_files: dict[str, Path],
    out_dir: Path,
    profile: BatchProfile,
    opts: ExportOptions,
    step: Callable[[str], None],
) -> dict[str, Path]:
    """Build the requested plans; returns precision -> plan path."""
    wanted: list[tuple[str, bool]] = []  # (precision, required)
    if opts.with_fp16 and opts.engine is not False:
        wanted.append(("fp16", bool(opts.engine)))
    if opts.fp32_engine:
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
                **_build_options(opts, profile),
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
        result.files += [plan, card_path(plan)]
        result.models.append(plan)
        log.info("built %s (%s)", plan, read_export_card(plan).precision)
    return plans
