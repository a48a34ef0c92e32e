"""Engine numeric parity: a freshly built TensorRT plan against ONNX Runtime (CPU).

After every build (a build implies a GPU) the staged plan runs through the project's own
:class:`~p2p_deploy.runners.tensorrt_runner.TensorRTRunner` on the parity inputs of
:mod:`.parity` and is compared with ONNX Runtime (CPU) on a reference ONNX: the fp32 export
for fp16 and fp32 engines, the INT8 graph itself for an int8 engine (the exporter's choice):

* fp16 engine: PSNR >= 40 dB on every batch;
* fp32 engine: max abs err <= 1e-3 (TensorRT's fp32 kernels reorder sums; TF32 is off);
* int8 engine: PSNR >= 30 dB against ``model_int8.onnx``, the graph it was built from. What
  the engine must show is that it runs that graph; its quality against fp32 is the graph's
  own quality gate (>= 35 dB on held-out images). The parity inputs are smooth noise, not
  images: on them two faithful int8 runs of the same gated graph already fall below 35 dB
  against fp32 (full-size generator, random weights, 32 synthetic calibration maps, held-out
  gate 41.0 dB: ONNX Runtime's QDQ executor 33.3 dB at batch 1, OpenVINO's int8 kernels
  32.6 dB), while against the INT8 graph OpenVINO scores 37.9-40.3 dB (tiny generator
  37.7-41.4 dB) and a broken engine (wrong scale axis, lost bias) far less;
* all: a batch run equals its images run one by one (frames never share statistics), to
  :data:`ENGINE_INDEPENDENCE_TOL`: fp32 to its own parity bar (1e-3; the batch-1 and batch-3
  kernels are different TensorRT tactics that reorder sums, so the ONNX bar of 1e-4 is
  tighter than the engine is held to against ONNX Runtime), fp16 5e-2 (the same argument:
  its parity bar, 40 dB, lets each run be off from fp32 by 0.02 RMS, and the batch-1 and
  batch-3 tactics round to fp16 differently; the ONNX check's 1e-2 holds for ONNX Runtime's
  CPU, which computes fp16 graphs in fp32 between casts), int8 0.15 (kernels
  chosen per batch size may round a requantized activation to the next int8 step, which the
  following layers carry on: OpenVINO's int8 batch of 3 differs from its images run alone by
  up to 5.4e-2 on the full-size generator). A batch that shares statistics across its frames
  is off by tenths (0.74 on the same generator in fp32, per-image PSNR 23-30 dB).
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

from p2p_deploy.errors import P2PError, first_line
from p2p_deploy.export.parity import ParityFigure, ParityReport, ort_session, random_images
from p2p_deploy.imaging import psnr
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.spatial import Size

if TYPE_CHECKING:
    from p2p_deploy.export.tensorrt_build import BatchProfile

ENGINE_FP32_MAX_ABS = 1e-3
ENGINE_FP16_MIN_PSNR = 40.0
ENGINE_INT8_MIN_PSNR = 30.0  # against the INT8 ONNX it was built from (module docstring)
ENGINE_INDEPENDENCE_TOL = {"fp32": ENGINE_FP32_MAX_ABS, "fp16": 5e-2, "int8": 0.15}


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
        independence_tol=ENGINE_INDEPENDENCE_TOL.get(precision, ENGINE_FP32_MAX_ABS),
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

    Raises:
        P2PError: also when the runner fails at run time (its RuntimeError: no execution
            context, a refused shape or address, a failed ``execute_async_v3``, CUDA out of
            memory), so that a plan that cannot run is one line, never a traceback, and an
            INT8 plan's failure stays a note (:func:`~.int8_engine.build_int8_plan`).
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
    try:
        with TensorRTRunner(plan_path) as runner:
            pairs = []
            for x in inputs:
                ref = session.run(None, {ref_card.input_name: x.astype(ref_np)})[0]
                pairs.append((runner.infer(x), ref.astype(np.float32)))
            return engine_report(
                str(plan_path), card.precision, card.test_norm, pairs, runner.infer, inputs
            )
    except RuntimeError as exc:
        why = first_line(exc)
        raise P2PError(f"{plan_path}: the engine failed its parity run ({why}).") from None
