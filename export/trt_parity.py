"""Engine numeric parity: a freshly built TensorRT plan against ONNX Runtime fp32.

After every build (a build implies a GPU) the staged plan runs through the project's own
:class:`~p2p_deploy.runners.tensorrt_runner.TensorRTRunner` on the parity inputs of
:mod:`.parity` and is compared with ONNX Runtime (CPU) on the fp32 ONNX export:

* fp16 engine: PSNR >= 40 dB on every batch;
* fp32 engine: max abs err <= 1e-3 (TensorRT's fp32 kernels reorder sums; TF32 is off);
* int8 engine (from the QDQ graph): PSNR >= 35 dB, the INT8 export's quality gate;
* both: a batch run equals its images run one by one (frames never share statistics);
* an engine with a profile over height and width (``p2p export --spatial``): also at its
  profile's MIN, OPT and MAX frame sizes (:func:`engine_parity_plan`).

The comparison itself (:func:`engine_report`) is plain numpy and is tested without a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from p2p_deploy.export.parity import ParityFigure, ParityReport, ort_session, random_images
from p2p_deploy.imaging import psnr
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.spatial import Size

if TYPE_CHECKING:
    from p2p_deploy.export.tensorrt_build import BatchProfile

ENGINE_FP32_MAX_ABS = 1e-3
ENGINE_FP16_MIN_PSNR = 40.0
ENGINE_INT8_MIN_PSNR = 35.0


def parity_batches(profile_min: int, profile_max: int) -> tuple[int, ...]:
    """Batch sizes to compare inside the engine's profile: its minimum, then 3 (or the largest
    batch the profile takes, when below 3), so that batch independence is checked too."""
    big = min(profile_max, max(profile_min, 3))
    return (profile_min, big) if big != profile_min else (profile_min,)


def engine_parity_plan(
    card: ExportCard, profile_min: int, profile_max: int
) -> list[tuple[int, Size]]:
    """(batch, (H, W)) of each comparison: :func:`parity_batches` at S x S (or, when the
    engine's profile excludes it, at its smallest size), then for a profile over H and W the
    smallest batch at each of its MIN, OPT and MAX sizes."""
    sizes = card.size_range()
    s = (card.image_size, card.image_size)
    first = s if sizes.accepts(s) else sizes.min
    plan = [(b, first) for b in parity_batches(profile_min, profile_max)]
    if card.spatial_profile is not None:
        for hw in dict.fromkeys(card.spatial_profile.sizes()):
            if (profile_min, hw) not in plan:
                plan.append((profile_min, hw))
    return plan


def engine_report(
    model: str,
    precision: str,
    test_norm: str,
    results: Sequence[tuple[np.ndarray, np.ndarray]],
    run_single: Callable[[np.ndarray], np.ndarray] | None = None,
    inputs: Sequence[np.ndarray] = (),
) -> ParityReport:
    """A :class:`ParityReport` from (engine output, reference output) pairs, each
    (N, 3, H, W) float32. ``run_single`` with the ``inputs`` of each pair re-runs a batch image
    by image for the batch-independence figure."""
    by_psnr = {"fp16": ENGINE_FP16_MIN_PSNR, "int8": ENGINE_INT8_MIN_PSNR}
    report = ParityReport(
        model=model,
        precision=precision,
        test_norm=test_norm,
        metric="psnr_db" if precision in by_psnr else "max_abs_err",
        threshold=by_psnr.get(precision, ENGINE_FP32_MAX_ABS),
    )
    indep = 0.0
    for i, (got, ref) in enumerate(results):
        if got.shape != ref.shape:
            raise ValueError(f"{model}: output shape {got.shape} differs from {ref.shape}")
        if not (np.isfinite(got).all() and np.isfinite(ref).all()):
            report.non_finite = True
        report.figures.append(
            ParityFigure(
                len(got), float(np.abs(got - ref).max()), psnr(got, ref), list(got.shape[2:4])
            )
        )
        if run_single is not None and len(got) > 1 and i < len(inputs):
            x = inputs[i]
            singles = np.concatenate([run_single(x[k : k + 1]) for k in range(len(x))])
            err = float(np.abs(singles - got).max())
            indep = err if math.isnan(err) or math.isnan(indep) else max(indep, err)
    report.batch_independence_err = indep
    return report


def check_engine_parity(
    plan_path: str | Path, reference_onnx: str | Path, profile: BatchProfile, seed: int = 1234
) -> ParityReport:
    """Run ``plan_path`` (with its card) and ONNX Runtime on ``reference_onnx`` on the same
    random images; ``profile``: the plan's :class:`~.tensorrt_build.BatchProfile`.

    Needs TensorRT and a GPU (the runner raises its one-sentence errors otherwise).
    """
    from p2p_deploy.runners.tensorrt_runner import TensorRTRunner

    card = read_export_card(plan_path)
    ref_card = read_export_card(reference_onnx)
    session = ort_session(reference_onnx)
    ref_np = np.float16 if ref_card.io_dtype == "float16" else np.float32
    channels = card.generator.in_channels
    inputs = [
        random_images(b, channels, hw, seed + i)
        for i, (b, hw) in enumerate(engine_parity_plan(card, profile.min, profile.max))
    ]
    with TensorRTRunner(plan_path) as runner:
        pairs = []
        for x in inputs:
            ref = session.run(None, {ref_card.input_name: x.astype(ref_np)})[0].astype(np.float32)
            pairs.append((runner.infer(x), ref))
        return engine_report(
            str(plan_path), card.precision, card.test_norm, pairs, runner.infer, inputs
        )
