"""The one place that converts between images and model tensors, both ways.

Conventions:
    * OpenCV frames: (H, W, 3) uint8, BGR.
    * Model tensors: (N, 3, H, W) float, RGB, values in [-1, 1].
Training, every runner and the pipeline use these functions (numpy on the CPU; the torch
versions run wherever their tensors live, e.g. on the GPU).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch stays an optional import for torch-free TensorRT boxes
    import torch


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any image OpenCV can decode -> (H, W, 3) uint8 BGR.

    Grayscale is replicated, alpha is dropped (composited on black is *not* done: pix2pix
    models never saw alpha), 16-bit and float images are scaled to 8 bits.
    """
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(f"unsupported image shape {img.shape}")


def bgr8_to_tensor(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR (or a list of (H, W, 3)) -> (N, 3, H, W) float32 RGB in [-1, 1]."""
    batch = np.stack(frames) if isinstance(frames, list) else frames
    if batch.ndim == 3:
        batch = batch[None]
    rgb = batch[..., ::-1]
    out = rgb.transpose(0, 3, 1, 2).astype(np.float32)
    out *= 2.0 / 255.0
    out -= 1.0
    return np.ascontiguousarray(out)


def tensor_to_bgr8(batch: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float RGB in [-1, 1] (any float dtype) -> (N, H, W, 3) uint8 BGR."""
    x = np.asarray(batch, dtype=np.float32)
    x = (x + 1.0) * 127.5 + 0.5
    np.clip(x, 0.0, 255.0, out=x)
    return np.ascontiguousarray(x.astype(np.uint8).transpose(0, 2, 3, 1)[..., ::-1])


def rgb8_to_tensor(img_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1] (training data path)."""
    return np.ascontiguousarray(img_rgb.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)


def torch_bgr8_to_tensor(frames: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Torch version of :func:`bgr8_to_tensor`, on the frames' device.

    frames: (N, H, W, 3) uint8 BGR. Returns (N, 3, H, W) RGB in [-1, 1] of ``dtype``
    (float32 by default).
    """
    import torch

    x = frames.flip(-1).permute(0, 3, 1, 2).to(dtype or torch.float32)
    return x.mul_(2.0 / 255.0).sub_(1.0)


def torch_tensor_to_bgr8(batch: torch.Tensor) -> torch.Tensor:
    """Torch :func:`tensor_to_bgr8`: (N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8 BGR."""
    import torch

    x = (batch.float() + 1.0).mul_(127.5).add_(0.5).clamp_(0.0, 255.0)
    return x.to(torch.uint8).permute(0, 2, 3, 1).flip(-1).contiguous()


def psnr_from_mse(mse: float, data_range: float = 2.0, *, cap_db: float | None = None) -> float:
    """PSNR in dB of a mean squared error ``mse`` over values spanning ``data_range``.

    The one PSNR of the project (every caller goes through it or :func:`psnr`):

    * ``mse == 0`` (identical): ``inf``, or ``cap_db`` when given;
    * with ``cap_db``, any figure above it is ``cap_db`` (reports that store JSON, which has no
      infinity, and average figures, which one identical pair would make infinite);
    * ``mse == inf`` (an output holding inf): ``-inf``, the worst figure, without a warning;
    * ``mse`` NaN (an output holding NaN): NaN, so that a broken output never scores a finite
      figure and a NaN-aware aggregate (``min``/``mean``) shows it.
    """
    mse = float(mse)
    if math.isnan(mse):
        return math.nan
    if mse == math.inf:
        return -math.inf
    if mse == 0.0:
        return math.inf if cap_db is None else float(cap_db)
    value = 10.0 * math.log10(data_range**2 / mse)
    return value if cap_db is None else min(value, float(cap_db))


def psnr(
    a: np.ndarray, b: np.ndarray, data_range: float = 2.0, *, cap_db: float | None = None
) -> float:
    """PSNR in dB between two arrays of values in [-1, 1] (range 2): ``inf`` when identical,
    ``cap_db`` at most when given; NaN/inf in the arrays as :func:`psnr_from_mse` says."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return psnr_from_mse(float(np.mean(diff * diff)), data_range, cap_db=cap_db)
