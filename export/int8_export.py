"""The ``--int8`` step of ``p2p export``: calibrate, quantize, gate, write ``model_int8.onnx``
(and, with TensorRT and a GPU, ``model_int8.plan``).

Everything is made in the export's staging folder and moved under its final name only after
the graph check and the quality gate passed: a failed gate leaves no ``model_int8.onnx``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.errors import P2PError
from p2p_deploy.export.calibration import (
    DEFAULT_CALIB_COUNT,
    CalibrationSet,
    SyntheticProvider,
    default_calibration,
    folder_images,
)
from p2p_deploy.export.int8 import (
    DEFAULT_METHOD,
    MIN_PSNR_DB,
    GateReport,
    pooled_psnr,
    quality_gate,
    quantize_int8,
)
from p2p_deploy.sidecar import ModelSidecar, sidecar_for

log = logging.getLogger(__name__)

INT8_ONNX = "model_int8.onnx"
QUANTIZER = "onnxruntime.quantization.quantize_static (QDQ)"


@dataclass(frozen=True)
class Int8Options:
    """What ``--int8`` was given.

    Attributes:
        calib_dir: ``--calib``: a folder of images like the ones to translate; None: the
            checkpoint's own kind of data (synthetic facades for a synthetic run).
        calib_count: ``--calib-count``: calibration images (default 32).
        method: calibration method (``minmax``, ``percentile``, ``entropy``).
        min_psnr_db: the quality gate.
        synthetic: draws synthetic input images (the CLI passes train's generator; export may
            not import train). None: a synthetic checkpoint needs ``--calib``.
    """

    calib_dir: Path | None = None
    calib_count: int = DEFAULT_CALIB_COUNT
    method: str = DEFAULT_METHOD
    min_psnr_db: float = MIN_PSNR_DB
    synthetic: SyntheticProvider | None = None


def check_options(opts: Int8Options) -> None:
    """Flag checks done before anything is loaded or written."""
    if opts.calib_count < 1:
        raise P2PError(f"--calib-count must be at least 1, got {opts.calib_count}.")
    if opts.calib_dir is not None and not Path(opts.calib_dir).is_dir():
        raise P2PError(f"{opts.calib_dir}: --calib must be a folder of images (no such folder).")


def calibration_set(
    opts: Int8Options, checkpoint: str | Path, meta: dict[str, Any], size: int
) -> CalibrationSet:
    """The calibration and held-out images for ``opts`` (folder, or the checkpoint's data)."""
    if opts.calib_dir is not None:
        return folder_images(opts.calib_dir, size, opts.calib_count)
    return default_calibration(checkpoint, meta, size, opts.synthetic, opts.calib_count)


@dataclass
class Int8Result:
    """The staged INT8 model, its gate report and its calibration."""

    staged: Path
    gate: GateReport
    calibration: CalibrationSet


def stage_int8(
    fp32_onnx: Path,
    stage: Path,
    calib: CalibrationSet,
    opts: Int8Options,
    step: Callable[[str], None] = lambda _m: None,
) -> Int8Result:
    """Quantize ``fp32_onnx`` into ``stage/model_int8.onnx``, check, gate, write its sidecar.

    Raises:
        P2PError: quantization failed, the graph is not the INT8 one, or the gate failed
            ("... PSNR 28.8 dB ... below 35 dB"); nothing is promoted then.
    """
    staged = stage / INT8_ONNX
    step(f"calibrating and quantizing {INT8_ONNX} on {len(calib.calib)} images")
    graph = quantize_int8(fp32_onnx, staged, calib.calib, method=opts.method)
    step(f"quality gate of {INT8_ONNX} on {len(calib.holdout)} held-out images")
    gate = quality_gate(staged, fp32_onnx, calib.holdout, opts.min_psnr_db)
    if not gate.passed:
        raise P2PError(
            f"{INT8_ONNX}: INT8 quality gate failed: {gate.summary()}; calibrated on "
            f"{len(calib.calib)} images from {calib.source}; nothing was written "
            "(calibrate on images like the ones to translate, --calib DIR)."
        )
    base = ModelSidecar.read(fp32_onnx)
    side = dataclasses.replace(
        base,
        precision="int8",  # verified from the graph (quantize_int8 refused anything else)
        extra={
            "quantizer": QUANTIZER,
            "quantization": {
                "weights": "int8, symmetric, per output channel",
                "activations": "int8, symmetric (zero point 0)",
                "quantized_ops": list(graph.ops),
                "float_ops": graph.float_ops,
            },
            "calibration": {"method": opts.method, **calib.to_dict()},
            "quality_gate": gate.to_dict(),
            "int8_graph": graph.to_dict(),
            "source_onnx": fp32_onnx.name,
        },
    )
    side.write(staged)
    return Int8Result(staged=staged, gate=gate, calibration=calib)


def promote(staged: Path, out_dir: Path) -> list[Path]:
    """Move a staged model and its sidecar under their final names (sidecar first)."""
    final = out_dir / staged.name
    os.replace(sidecar_for(staged), sidecar_for(final))
    os.replace(staged, final)
    return [final, sidecar_for(final)]


def build_int8_plan(
    int8_onnx: Path,
    fp32_onnx: Path,
    out_dir: Path,
    holdout: Any,
    build: Callable[[Path, Path], ModelSidecar],
    min_psnr_db: float = MIN_PSNR_DB,
) -> list[Path]:
    """``model_int8.plan`` from the INT8 QDQ ONNX: built by ``build(onnx, plan)`` (the
    project's strongly typed builder: explicit quantization, no calibrator, no INT8 flag; it
    refuses an engine whose convolutions do not read int8), then checked numerically against
    the fp32 ONNX on the held-out images like the ONNX gate, before it gets its final name.

    Raises:
        MissingDependency / NoTensorRTGpu: from ``build`` (the caller decides if that is fatal).
        P2PError: the build failed or the engine misses the gate; nothing is left behind then.
    """
    import tempfile

    from p2p_deploy.export.tensorrt_build import plan_name
    from p2p_deploy.runners.factory import open_runner

    stage = Path(tempfile.mkdtemp(prefix=".p2p-int8-plan-", dir=out_dir))
    try:
        staged = stage / plan_name("int8")
        side = build(int8_onnx, staged)
        gate = _plan_gate(staged, fp32_onnx, holdout, min_psnr_db, open_runner)
        if not gate.passed:
            raise P2PError(
                f"{staged.name}: the INT8 engine misses the quality gate: {gate.summary()}; "
                "nothing was written."
            )
        side = dataclasses.replace(side, extra={**side.extra, "quality_gate": gate.to_dict()})
        side.write(staged)
        return promote(staged, out_dir)
    finally:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)


def _plan_gate(
    plan: Path, fp32_onnx: Path, holdout: Any, threshold: float, open_runner: Callable
) -> GateReport:
    """PSNR of the engine (TensorRT runner) against the fp32 ONNX (ONNX Runtime, CPU)."""
    import math

    import numpy as np

    from p2p_deploy.export.parity import ort_session
    from p2p_deploy.imaging import psnr

    ref_sess = ort_session(fp32_onnx)
    name = ref_sess.get_inputs()[0].name
    worst, se, n = math.inf, 0.0, 0
    with open_runner(plan, "tensorrt") as runner:
        for x in holdout:
            x = x[None].astype(np.float32)
            got = runner.infer(x)
            ref = ref_sess.run(None, {name: x})[0]
            worst = min(worst, psnr(got, ref) if np.isfinite(got).all() else -math.inf)
            se += float(np.square(got.astype(np.float64) - ref).sum())
            n += ref.size
    return GateReport(
        psnr_db=worst, mean_psnr_db=pooled_psnr(se, n), images=len(holdout), threshold=threshold
    )


def export_int8_onnx(
    result: Any,
    fp32_onnx: Path,
    stage: Path,
    loaded: Any,
    opts: Int8Options,
    step: Callable[[str], None],
) -> Path:
    """The ``--int8`` hook of ``run_export``: calibration set, quantize, gate, promote.

    Adds the files to ``result`` (an ExportResult), sets ``result.int8`` (an
    :class:`Int8Result`) and returns the final ``model_int8.onnx``.
    """
    import time

    t = time.perf_counter()
    calib = calibration_set(opts, loaded.path, loaded.meta, loaded.config.image_size)
    q = stage_int8(fp32_onnx, stage, calib, opts, step)
    written = promote(q.staged, fp32_onnx.parent)
    result.int8 = q
    result.files += written
    result.models.append(written[0])
    result.seconds["onnx_int8"] = time.perf_counter() - t
    return written[0]


def export_int8_plan(
    result: Any,
    finals: dict[str, Path],
    opts: Int8Options,
    step: Callable[[str], None],
    **build_options: Any,
) -> None:
    """``model_int8.plan`` where TensorRT and a GPU are present, a note in ``result``
    otherwise. ``build_options``: ``build_engine``'s keyword arguments (profile, workspace...).
    """
    import time

    from p2p_deploy.deps import available
    from p2p_deploy.errors import MissingDependency
    from p2p_deploy.export.tensorrt_build import NoTensorRTGpu, build_engine, skipped_message

    if not available("tensorrt"):
        if not any(n.startswith("TensorRT engine skipped") for n in result.notes):
            result.notes.append(skipped_message())
        return
    step("building TensorRT engine model_int8.plan")
    t = time.perf_counter()
    try:
        written = build_int8_plan(
            finals["int8"],
            finals["fp32"],
            finals["int8"].parent,
            result.int8.calibration.holdout,
            lambda onnx_path, plan: build_engine(onnx_path, plan, **build_options),
            opts.min_psnr_db,
        )
    except (MissingDependency, NoTensorRTGpu) as exc:
        result.notes.append(skipped_message(str(exc)))
        return
    result.seconds["engine_int8"] = time.perf_counter() - t
    result.files += written
    result.models.append(written[0])
