"""The pieces of ``p2p export --int8`` (run by :meth:`.exporter.Exporter.export_int8`):
calibration images, quantize, graph check, quality gate, card of ``model_int8.onnx``.

The model is made in the export's staging folder; the exporter moves it under its final name
only after the graph check and the quality gate passed: a failed gate leaves no
``model_int8.onnx``. With TensorRT and a GPU the exporter also builds ``model_int8.plan``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from p2p_deploy.errors import P2PError
from p2p_deploy.export.calibration import (
    DEFAULT_CALIB_COUNT,
    CalibrationSet,
    SyntheticProvider,
    calibration_count,
    default_calibration,
    folder_images,
)
from p2p_deploy.export.int8 import (
    DEFAULT_METHOD,
    MIN_PSNR_DB,
    GateReport,
    quality_gate,
    quantize_int8,
)
from p2p_deploy.models.card import ModelCard, read_export_card
from p2p_deploy.models.spatial import SpatialProfile, format_size

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
    opts: Int8Options,
    checkpoint: str | Path,
    card: ModelCard,
    spatial: SpatialProfile | None = None,
) -> CalibrationSet:
    """The calibration and held-out images for ``opts`` (folder, or the checkpoint's data), at
    the model's square or, with ``spatial``, at the sizes it will run (calibration.py)."""
    count = opts.calib_count
    if spatial is not None:
        count = calibration_count(card.generator, spatial.opt, opts.calib_count)
        if count < opts.calib_count:
            log.warning(
                "INT8 calibration at %s: %d images instead of %d (the calibrator holds every "
                "activation of every image; %d already cover %d px)",
                format_size(spatial.opt), count, opts.calib_count, count,
                count * spatial.opt[0] * spatial.opt[1],
            )  # fmt: skip
    if opts.calib_dir is not None:
        return folder_images(
            opts.calib_dir,
            card.image_size,
            count,
            spatial=spatial,
            stride=card.generator.stride,
        )
    return default_calibration(checkpoint, card, opts.synthetic, count, spatial)


@dataclass(frozen=True)
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
    """Quantize ``fp32_onnx`` into ``stage/model_int8.onnx``, check, gate, write its card.

    Raises:
        P2PError: quantization failed, the graph is not the INT8 one, or the gate failed
            ("... PSNR 28.8 dB ... below 35 dB"); nothing is promoted then.
    """
    staged = stage / INT8_ONNX
    step(f"calibrating and quantizing {INT8_ONNX} on {len(calib.calib)} images")
    method = opts.method
    try:
        graph = quantize_int8(fp32_onnx, staged, calib.calib, method=method)
    except P2PError as exc:
        if method == "minmax":
            raise
        # Histogram methods cannot bin a (nearly) constant activation, e.g. calibration images
        # that are all one colour: min/max always works, and the gate judges the result.
        log.warning("%s calibration failed (%s); using minmax", method, exc)
        method = "minmax"
        graph = quantize_int8(fp32_onnx, staged, calib.calib, method=method)
    step(f"quality gate of {INT8_ONNX} on {len(calib.holdout)} held-out images")
    gate = quality_gate(staged, fp32_onnx, calib.holdout, opts.min_psnr_db)
    if not gate.passed:
        raise P2PError(
            f"{fp32_onnx.parent / INT8_ONNX}: INT8 quality gate failed: {gate.summary()}; "
            f"calibrated on "
            f"{len(calib.calib)} images from {calib.source}; nothing was written "
            "(calibrate on images like the ones to translate, --calib DIR)."
        )
    base = read_export_card(fp32_onnx)
    card = dataclasses.replace(
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
            "calibration": {"method": method, **calib.to_dict()},
            "quality_gate": gate.to_dict(),
            "int8_graph": graph.to_dict(),
            "source_onnx": fp32_onnx.name,
        },
    )
    card.write(staged)
    return Int8Result(staged=staged, gate=gate, calibration=calib)
