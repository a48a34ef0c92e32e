"""Parity: an exported ONNX run in ONNX Runtime (CPU) against eager torch in the same mode.

fp32 exports must match to a max abs error of 1e-4; fp16 exports must reach a PSNR of 40 dB
against the *fp32* torch module (the fp16 model's error, not its agreement with itself). Inputs
are random images in [-1, 1]; batch 3 holds three different images, and its outputs are also
compared image by image with batch-1 runs of the same ONNX, which catches any statistics mixed
across a batch. An export with dynamic height and width (``p2p export --spatial``) is also
checked at batch 1 at each size of its profile (MIN, OPT, MAX) and, when none of those is
non-square, at a non-square size within it (:func:`parity_sizes`).

Note on fp16 here: ONNX Runtime's CPU provider has no fp16 kernel for some ops and then inserts
Casts around them (its InsertCastTransformer): weights and the tensors between ops stay fp16,
some arithmetic runs in fp32. The CPU figure checks the fp16 graph's rounding, not a GPU's
fp16 arithmetic. TensorRT engines are not checked here: their precision is verified from the
engine at build time (export/tensorrt_build.py), but their numeric parity needs a GPU and is
not checked by this project yet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from p2p_deploy.deps import require
from p2p_deploy.errors import P2PError, first_line
from p2p_deploy.imaging import psnr
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.spatial import Size

log = logging.getLogger(__name__)

FP32_MAX_ABS = 1e-4
FP16_MIN_PSNR = 40.0
# Two different batches of each size: "several random inputs at batch 1 and 3".
DEFAULT_BATCHES: tuple[int, ...] = (1, 1, 3, 3)


@dataclass
class ParityFigure:
    """One comparison: ``batch`` images of ``size`` [height, width], max abs error and PSNR
    (dB, range [-1, 1])."""

    batch: int
    max_abs_err: float
    psnr_db: float
    size: list[int] | None = None


@dataclass
class ParityReport:
    """Result of :func:`check_onnx_parity`.

    Attributes:
        model: the ONNX file checked.
        precision: ``fp32`` or ``fp16`` (from its card).
        test_norm: the mode both sides ran in.
        figures: one per batch compared.
        batch_independence_err: max abs difference between a batch-3 run and three batch-1
            runs of the same ONNX (0 when images in a batch never interact).
        metric / threshold: ``max_abs_err`` <= threshold (fp32) or ``psnr_db`` >= it (fp16).
        independence_tol: the bar of ``batch_independence_err``; None: the ONNX one
            (:data:`FP32_MAX_ABS` for fp32, 1e-2 otherwise). Engines set their own
            (export/trt_parity.py).
    """

    model: str
    precision: str
    test_norm: str
    figures: list[ParityFigure] = field(default_factory=list)
    batch_independence_err: float = 0.0
    metric: str = "max_abs_err"
    threshold: float = FP32_MAX_ABS

    non_finite: bool = False
    independence_tol: float | None = None

    # Python's max/min skip a NaN depending on its position: NaN wins here, so a non-finite
    # figure shows in the aggregates and fails the comparisons below.
    @property
    def max_abs_err(self) -> float:
        errs = [f.max_abs_err for f in self.figures]
        return math.nan if any(math.isnan(e) for e in errs) else max(errs)

    @property
    def min_psnr_db(self) -> float:
        vals = [f.psnr_db for f in self.figures]
        return math.nan if any(math.isnan(v) for v in vals) else min(vals)

    @property
    def passed(self) -> bool:
        if self.non_finite:
            return False
        # A batch that mixes images is wrong whatever the precision: hold it to the fp32 bar
        # (fp16 runs of the same graph at batch 1 vs 3 differ by kernel choice only).
        indep_tol = self.independence_tol
        if indep_tol is None:
            indep_tol = FP32_MAX_ABS if self.precision == "fp32" else 1e-2
        if not self.batch_independence_err <= indep_tol:  # NaN fails too
            return False
        if self.metric == "max_abs_err":
            return self.max_abs_err <= self.threshold
        return self.min_psnr_db >= self.threshold

    def summary(self) -> str:
        """One line: model, precision, the figures."""
        psnr_txt = "inf" if math.isinf(self.min_psnr_db) else f"{self.min_psnr_db:.1f}"
        bar = (
            f"max abs err {self.max_abs_err:.2e} (<= {self.threshold:.0e})"
            if self.metric == "max_abs_err"
            else f"PSNR {psnr_txt} dB (>= {self.threshold:.0f} dB)"
        )
        other = (
            f"PSNR {psnr_txt} dB"
            if self.metric == "max_abs_err"
            else f"max abs err {self.max_abs_err:.2e}"
        )
        batches = sorted({f.batch for f in self.figures})
        sizes = list(dict.fromkeys(f"{f.size[0]}x{f.size[1]}" for f in self.figures if f.size))
        at = f", sizes {', '.join(sizes)}" if len(sizes) > 1 else ""
        nan_txt = "non-finite values (NaN/inf) in the outputs, " if self.non_finite else ""
        return (
            f"{Path(self.model).name} ({self.precision}, {self.test_norm}): {nan_txt}"
            f"{bar}, {other}, "
            f"batch-mixing err {self.batch_independence_err:.1e}, batches {batches}{at}: "
            f"{'ok' if self.passed else 'FAILED'}"
        )

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(passed=self.passed, max_abs_err=self.max_abs_err, min_psnr_db=self.min_psnr_db)
        for holder, key in [(d, "min_psnr_db"), (d, "max_abs_err"), (d, "batch_independence_err")]:
            if not math.isfinite(holder[key]):
                holder[key] = None  # JSON has no inf or NaN
        for f in d["figures"]:
            for key in ("psnr_db", "max_abs_err"):
                if not math.isfinite(f[key]):
                    f[key] = None
        return d


def random_images(batch: int, channels: int, size: int | Size, seed: int) -> np.ndarray:
    """(batch, channels, H, W) float32 in [-1, 1] (``size`` S for S x S, or (H, W)): smooth
    random images (upsampled noise plus fine noise), so that every image of a batch has
    different statistics."""
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, max(h // 8, 1), max(w // 8, 1), generator=g)
    smooth = torch.nn.functional.interpolate(
        coarse, size=(h, w), mode="bilinear", align_corners=False
    )
    fine = torch.rand(batch, channels, h, w, generator=g)
    x = 0.8 * smooth + 0.2 * fine
    # Different brightness/contrast per image: statistics that a mixed batch would blend.
    scale = torch.rand(batch, 1, 1, 1, generator=g) * 0.8 + 0.2
    shift = torch.rand(batch, 1, 1, 1, generator=g) * 0.8 - 0.4
    return ((x * 2 - 1) * scale + shift).clamp(-1, 1).numpy().astype(np.float32)


def parity_sizes(card: ExportCard, batches: Sequence[int]) -> list[tuple[int, Size]]:
    """(batch, (H, W)) of every comparison: ``batches`` at the model's S x S (when it takes
    it), then for an export with a spatial profile batch 1 at its MIN, OPT and MAX and, when
    none of those is non-square, at (MIN height, MAX width); a batch-3 run at MIN when S x S
    is outside the profile (the batch-mixing check)."""
    s = (card.image_size, card.image_size)
    sizes = card.size_range()
    plan: list[tuple[int, Size]] = []
    if sizes.accepts(s):
        plan += [(b, s) for b in batches]
    profile = card.spatial_profile
    if profile is None:
        return plan
    if not plan:
        plan.append((3, profile.min))
    extra = list(dict.fromkeys(profile.sizes()))
    if all(h == w for h, w in extra):
        extra.append((profile.min[0], profile.max[1]))
    plan += [(1, hw) for hw in dict.fromkeys(extra) if (1, hw) not in plan]
    return plan


def ort_session(onnx_path: str | Path, threads: int | None = None):
    """A CPU ONNX Runtime session for ``onnx_path`` (``threads`` intra-op threads)."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3  # the fp16 cast-insertion notes are expected, not warnings
    try:
        return ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise P2PError(
            f"{onnx_path}: ONNX Runtime cannot load it ({first_line(exc, 300)})."
        ) from None


def check_onnx_parity(
    onnx_path: str | Path,
    reference_module: nn.Module,
    *,
    batches: Sequence[int] = DEFAULT_BATCHES,
    seed: int = 0,
    max_abs_err: float = FP32_MAX_ABS,
    min_psnr_db: float = FP16_MIN_PSNR,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Compare the ONNX at ``onnx_path`` with ``reference_module`` on random inputs.

    Args:
        onnx_path: an exported model with its card (precision, test norm, I/O dtype).
        reference_module: eager fp32 torch module in the same test-norm mode, e.g.
            ``prepare_generator(model, card.test_norm)``; (N, C, S, S) float32 -> same.
            Used as given (its train/eval flags are the caller's choice).
        batches: batch sizes to try, one random batch each.
        seed: seed of the random inputs.
        max_abs_err: fp32 bar (max abs error).
        min_psnr_db: fp16 bar (PSNR against the fp32 reference).
        raise_on_failure: raise instead of returning a failed report.
    Raises:
        P2PError: "<model>: parity check failed: ..." with the figure and the bar.
    """
    card = read_export_card(onnx_path)
    channels = card.generator.in_channels
    io_np = np.float16 if card.io_dtype == "float16" else np.float32
    session = ort_session(onnx_path)
    fp16 = card.precision == "fp16"
    report = ParityReport(
        model=str(onnx_path),
        precision=card.precision,
        test_norm=card.test_norm,
        metric="psnr_db" if fp16 else "max_abs_err",
        threshold=min_psnr_db if fp16 else max_abs_err,
    )

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {card.input_name: x.astype(io_np)})[0].astype(np.float32)

    indep = 0.0
    for i, (batch, hw) in enumerate(parity_sizes(card, batches)):
        x = random_images(batch, channels, hw, seed + i)
        with torch.inference_mode():
            ref = reference_module(torch.from_numpy(x)).float().numpy()
        got = run(x)
        if got.shape != ref.shape:
            raise P2PError(
                f"{onnx_path}: output shape {got.shape} differs from torch's {ref.shape}."
            )
        if not (np.isfinite(got).all() and np.isfinite(ref).all()):
            report.non_finite = True
        report.figures.append(
            ParityFigure(batch, float(np.abs(got - ref).max()), psnr(got, ref), list(hw))
        )
        if batch > 1:
            singles = np.concatenate([run(x[k : k + 1]) for k in range(batch)])
            err = float(np.abs(singles - got).max())
            indep = err if math.isnan(err) or math.isnan(indep) else max(indep, err)
    report.batch_independence_err = indep
    log.debug("parity %s", report.summary())
    if raise_on_failure and not report.passed:
        raise P2PError(f"{onnx_path}: parity check failed: {report.summary()}")
    return report
