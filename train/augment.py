"""The paper's jitter: resize both halves to ``load_size`` (286 for 256), random crop back to
``image_size``, random horizontal mirror -- the same crop and flip for A and B.

Randomness is a pure function of ``(seed, epoch, index)``: a resumed run, a run with several
data-loader workers, or a DDP rank draws exactly the crops an uninterrupted single process draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p2p_deploy.media.pairs import resize_square


@dataclass(frozen=True)
class JitterParams:
    """One sample's augmentation: crop offset (x, y) inside the resized image, and mirror."""

    x: int
    y: int
    flip: bool


def jitter_params(
    seed: int,
    epoch: int,
    index: int,
    load_size: int,
    crop_size: int,
    jitter: bool = True,
    flip: bool = True,
) -> JitterParams:
    """Draw the crop and flip for sample ``index`` in ``epoch`` (deterministic)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index), 0xA06])
    span = load_size - crop_size if jitter else 0
    x = int(rng.integers(0, span + 1))
    y = int(rng.integers(0, span + 1))
    mirror = bool(rng.random() < 0.5)
    return JitterParams(x, y, mirror and flip)


def apply_jitter(
    images: list[np.ndarray],
    params: JitterParams,
    load_size: int,
    crop_size: int,
    jitter: bool = True,
) -> list[np.ndarray]:
    """Apply one :class:`JitterParams` to every (H, W, 3) uint8 image of a pair.

    With ``jitter`` the images are resized to ``load_size`` and cropped; without it they are
    resized straight to ``crop_size``. Enlarging is bicubic, as the canonical repo; shrinking
    uses area averaging, which (like PIL's bicubic in the canonical repo, which widens its
    kernel when downscaling) does not alias, where OpenCV's bicubic would.
    Returns (crop_size, crop_size, 3) uint8 arrays.
    """
    out = []
    for img in images:
        size = load_size if jitter else crop_size
        img = resize_square(img, size)  # shared with evaluation (p2p_deploy.media.pairs)
        if jitter:
            img = img[params.y : params.y + crop_size, params.x : params.x + crop_size]
        if params.flip:
            img = img[:, ::-1]
        out.append(np.ascontiguousarray(img))
    return out
