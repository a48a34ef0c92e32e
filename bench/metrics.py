"""Image-quality metrics on model tensors: L1, PSNR and SSIM, all on values in [-1, 1].

Inputs are (3, H, W) float arrays, RGB in [-1, 1] (the model's own range), so figures match the
training loss (L1) and validation PSNR of ``p2p train``. SSIM follows Wang et al. (2004) with
the settings of scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=2, channel_axis=0)``: an 11 x 11 Gaussian window,
K1 = 0.01, K2 = 0.03, the mean over the window-valid interior of each channel, then over channels.
The test suite checks it against scikit-image.
"""

from __future__ import annotations

import cv2
import numpy as np

from p2p_deploy.imaging import psnr

DATA_RANGE = 2.0  # [-1, 1]
# Identical images have infinite PSNR; JSON has no infinity and means would be useless: cap.
PSNR_CAP_DB = 100.0
_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # scipy's truncate=3.5, as scikit-image uses: 5 -> 11 x 11
_WIN = 2 * _RADIUS + 1


def l1(output: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference (same scale as the training L1 loss)."""
    return float(np.mean(np.abs(np.asarray(output, np.float64) - np.asarray(target, np.float64))))


def psnr_db(output: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB for a peak-to-peak range of 2, capped at :data:`PSNR_CAP_DB` (identical
    images score the cap): :func:`p2p_deploy.imaging.psnr`."""
    return psnr(output, target, DATA_RANGE, cap_db=PSNR_CAP_DB)


def _blur(x: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(x, (_WIN, _WIN), _SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM of two (C, H, W) images in [-1, 1] (H, W >= 11).

    Raises:
        ValueError: shapes differ or the images are smaller than the 11 x 11 window.
    """
    x = np.asarray(output, np.float64)
    y = np.asarray(target, np.float64)
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"ssim needs two (C, H, W) arrays of one shape, got {x.shape}, {y.shape}")
    if min(x.shape[1:]) < _WIN:
        raise ValueError(f"ssim needs images of at least {_WIN} x {_WIN} pixels, got {x.shape}")
    c1 = (0.01 * DATA_RANGE) ** 2
    c2 = (0.03 * DATA_RANGE) ** 2
    scores = []
    for xc, yc in zip(x, y, strict=True):
        mx, my = _blur(xc), _blur(yc)
        sxx = _blur(xc * xc) - mx * mx
        syy = _blur(yc * yc) - my * my
        sxy = _blur(xc * yc) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        # Only where the whole window lies inside the image (the border is filter padding).
        scores.append(float(s[_RADIUS:-_RADIUS, _RADIUS:-_RADIUS].mean()))
    return float(np.mean(scores))


def image_metrics(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``{"l1", "psnr_db", "ssim"}`` for one (3, H, W) output against its target."""
    return {
        "l1": l1(output, target),
        "psnr_db": psnr_db(output, target),
        "ssim": ssim(output, target),
    }
