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
from p2p_deploy.media.files import list_images
from p2p_deploy.media.images import read_image


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB as an image viewer shows it (:func:`read_image`: a FIFO or a
    device file is never opened; EXIF orientation applied).

    Raises:
        DataError: one sentence naming the file and why it cannot be used.
    """
    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)


def read_rgb(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB, or None when the file cannot be read as an image."""
    try:
        return load_rgb(path)
    except DataError:
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


@dataclass
class SplitScan:
    """What a split folder holds: the pairs, and the files that belong to none (each with
    the reason: no partner with the same name, or another file with the same name)."""

    pairs: list[PairFiles]
    unpaired: list[tuple[Path, str]]


def _by_stem(files: list[Path]) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """Files by stem, and those whose stem an earlier file already has (``x.png``, ``x.jpg``)."""
    out: dict[str, Path] = {}
    clash: list[tuple[Path, str]] = []
    for p in files:
        if p.stem in out:
            clash.append((p, f"{out[p.stem].name} in its folder has the same name {p.stem}"))
        else:
            out[p.stem] = p
    return out, clash


def scan_split(root: Path, split: str) -> SplitScan:
    """The pairs of ``root/split`` (aligned or paired layout), sorted by name, and the files
    of a paired layout that have no partner (never dropped without a word).

    Raises:
        DataError: the split folder is missing, cannot be listed, or holds no images.
    """
    d = root / split
    if not d.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        where = f" (it has: {', '.join(have)})" if have else ""
        raise DataError(f"{d}: no such split folder{where}.")
    unpaired: list[tuple[Path, str]] = []
    if (d / "A").is_dir() and (d / "B").is_dir():
        a, clash_a = _by_stem(list_images(d / "A"))
        b, clash_b = _by_stem(list_images(d / "B"))
        pairs = [PairFiles(stem, (a[stem], b[stem])) for stem in sorted(set(a) & set(b))]
        unpaired = [
            *((a[s], "no file with the same name in B/") for s in sorted(set(a) - set(b))),
            *((b[s], "no file with the same name in A/") for s in sorted(set(b) - set(a))),
            *clash_a,
            *clash_b,
        ]
    else:
        pairs = [PairFiles(p.name, (p,)) for p in list_images(d)]
    if not pairs:
        raise DataError(f"{d}: no images (expected aligned A|B images or A/ and B/ folders).")
    return SplitScan(pairs, unpaired)


def split_pairs(root: Path, split: str) -> list[PairFiles]:
    """The pairs of ``root/split`` (see :func:`scan_split`)."""
    return scan_split(root, split).pairs


def load_pair(pair: PairFiles) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` as (H, W, 3) uint8 RGB.

    Raises:
        DataError: a file cannot be decoded, or an aligned image is not two square halves.
    """
    imgs = [load_rgb(p) for p in pair.paths]
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
