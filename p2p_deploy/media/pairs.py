"""Reading image pairs in the pix2pix layouts, shared by training (``p2p_deploy.train``) and
evaluation (``p2p_deploy.bench``), which must not import each other.

Layouts of a split folder ``ROOT/SPLIT``:
    * aligned: ``ROOT/SPLIT/*.jpg|png|...``, each image A (left half) | B (right half),
      width = 2 x height (the standard pix2pix archives);
    * paired: ``ROOT/SPLIT/A/`` and ``ROOT/SPLIT/B/`` with matching file stems.

Images come out as (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from p2p_deploy.errors import DataError
from p2p_deploy.imaging import to_bgr8
from p2p_deploy.media.files import list_images
from p2p_deploy.media.native import captured_native_stderr


def read_rgb(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB, or None when OpenCV cannot decode the file."""
    with captured_native_stderr():  # libpng prints its own "libpng error: ..." lines
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    try:
        return cv2.cvtColor(to_bgr8(img), cv2.COLOR_BGR2RGB)
    except ValueError:
        return None


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: bicubic when enlarging, area averaging when
    shrinking (no aliasing, like PIL's bicubic in the canonical repo). Unchanged when already
    ``size`` x ``size``."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_CUBIC if size > img.shape[0] else cv2.INTER_AREA
    return cv2.resize(img, (size, size), interpolation=interp)


@dataclass(frozen=True)
class PairFiles:
    """One pair on disk: ``(aligned_image,)`` or ``(a_image, b_image)``."""

    name: str
    paths: tuple[Path, ...]

    @property
    def aligned(self) -> bool:
        return len(self.paths) == 1


def split_pairs(root: Path, split: str) -> list[PairFiles]:
    """The pairs of ``root/split`` (aligned or paired layout), sorted by name.

    Raises:
        DataError: the split folder is missing or holds no images.
    """
    d = root / split
    if not d.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        where = f" (it has: {', '.join(have)})" if have else ""
        raise DataError(f"{d}: no such split folder{where}.")
    if (d / "A").is_dir() and (d / "B").is_dir():
        a = {p.stem: p for p in list_images(d / "A")}
        b = {p.stem: p for p in list_images(d / "B")}
        pairs = [PairFiles(stem, (a[stem], b[stem])) for stem in sorted(set(a) & set(b))]
    else:
        pairs = [PairFiles(p.name, (p,)) for p in list_images(d)]
    if not pairs:
        raise DataError(f"{d}: no images (expected aligned A|B images or A/ and B/ folders).")
    return pairs


def load_pair(pair: PairFiles) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` as (H, W, 3) uint8 RGB.

    Raises:
        DataError: a file cannot be decoded, or an aligned image is not two square halves.
    """
    imgs = []
    for p in pair.paths:
        img = read_rgb(p)
        if img is None:
            raise DataError(f"{p}: cannot decode the image.")
        imgs.append(img)
    if not pair.aligned:
        return imgs[0], imgs[1]
    img = imgs[0]
    h, w = img.shape[:2]
    if w % 2 != 0 or w != 2 * h:
        raise DataError(
            f"{pair.paths[0]}: not two square halves side by side ({w}x{h}, expected width = "
            "2 x height)."
        )
    return img[:, : w // 2], img[:, w // 2 :]
