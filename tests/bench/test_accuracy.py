"""Accuracy against the reference: identical, close, broken."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_deploy.bench.accuracy import compare


def test_identical_outputs_are_exact_with_null_psnr():
    a = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    assert compare(a, a.copy()) == {"max_abs_err": 0.0, "psnr_db": None}


def test_known_error_gives_known_psnr():
    a = np.zeros((1, 3, 4, 4), np.float32)
    b = a + 0.02  # mse 4e-4, range 2: PSNR = 10 log10(4 / 4e-4) = 40 dB
    r = compare(a, b)
    assert r["max_abs_err"] == pytest.approx(0.02, rel=1e-5)
    assert r["psnr_db"] == pytest.approx(40.0, abs=1e-3)


def test_nan_and_shape_mismatch_are_refused():
    a = np.zeros((1, 3, 4, 4), np.float32)
    b = a.copy()
    b[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compare(a, b)
    with pytest.raises(ValueError, match="shape"):
        compare(a, a[:, :, :2])
