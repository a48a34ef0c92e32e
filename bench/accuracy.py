"""Accuracy of a backend against eager fp32 torch on the same inputs.

JSON convention (documented in the report): identical outputs have infinite PSNR, which JSON
cannot hold, so ``psnr_db`` is ``null`` with ``max_abs_err`` 0.0; a row with no baseline to
compare with has both fields ``null``.
"""

from __future__ import annotations

import math

import numpy as np

from p2p_deploy.imaging import psnr


def compare(reference: np.ndarray, output: np.ndarray) -> dict[str, float | None]:
    """Max abs error and PSNR (dB, data range 2) of ``output`` against ``reference``.

    Both: (N, 3, S, S) float arrays in [-1, 1] of the same shape.
    Returns ``{"max_abs_err": float, "psnr_db": float | None}``; ``psnr_db`` is None when the
    outputs are identical (infinite PSNR).

    Raises:
        ValueError: shapes differ, or the output holds NaN/inf (a broken backend must not
            score a finite error).
    """
    ref = np.asarray(reference, dtype=np.float32)
    out = np.asarray(output, dtype=np.float32)
    if ref.shape != out.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference {ref.shape}")
    if not np.isfinite(out).all():
        raise ValueError("output holds NaN or inf values")
    err = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))))
    value = psnr(ref, out)
    return {"max_abs_err": err, "psnr_db": None if math.isinf(value) else round(value, 3)}
