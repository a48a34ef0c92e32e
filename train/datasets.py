"""Training data: synthetic facades, aligned ``A|B`` folders, paired ``A/`` + ``B/`` folders.

Every dataset is indexed by ``(epoch, index)`` keys (see :class:`EpochSampler`) so that the
augmentation of a sample depends only on ``(seed, epoch, index)``, and returns a dict::

    {"input": (3, S, S) float32 in [-1, 1], "target": (3, S, S) float32 in [-1, 1], "index": int}

``input`` is the condition (A for AtoB, B for BtoA) and ``target`` the image to generate.

Folder layouts (``--data DIR``):
    * aligned: ``DIR/train/*.jpg|png`` and ``DIR/val/...`` (``test/`` is not used in training),
      each image the photo A on the left and B on the right, width = 2 x height.
      Without ``val/``, ``test/`` is used for validation; with neither, validation is skipped.
    * paired: ``DIR/A/`` and ``DIR/B/`` with matching file names (stems), optionally split as
      ``DIR/train/A``, ``DIR/train/B``, ``DIR/val/A``, ``DIR/val/B``. An unsplit folder holds
      out its last 10% of pairs (at least one) for validation and trains on the rest; a single
      pair trains without validation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from p2p_deploy.errors import DataError
from p2p_deploy.imaging import rgb8_to_tensor
from p2p_deploy.jpeg import jpeg_data_truncated
from p2p_deploy.media.images import decode_image
from p2p_deploy.media.inputs import read_input_bytes

# The readers live in the core so that evaluation (bench) reads pairs the same way.
from p2p_deploy.media.pairs import list_images, read_rgb
from p2p_deploy.train.augment import apply_jitter, jitter_params
from p2p_deploy.train.synthetic import SPLIT_OFFSETS, synthetic_pair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataOptions:
    """What every dataset needs to turn a stored pair into training tensors."""

    image_size: int
    load_size: int
    direction: str = "BtoA"
    jitter: bool = True
    flip: bool = True
    seed: int = 0
    train: bool = True  # val/test: no jitter, no flip


class PairDataset(Dataset):
    """Base: subclasses implement :meth:`load_pair` -> ``(A_rgb, B_rgb)`` uint8."""

    def __init__(self, opts: DataOptions) -> None:
        self.opts = opts

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor | int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        o = self.opts
        a, b = self.load_pair(index)
        jitter, flip = (o.jitter, o.flip) if o.train else (False, False)
        params = jitter_params(o.seed, epoch, index, o.load_size, o.image_size, jitter, flip)
        a, b = apply_jitter([a, b], params, o.load_size, o.image_size, jitter)
        src, dst = (a, b) if o.direction == "AtoB" else (b, a)
        return {
            "input": torch.from_numpy(rgb8_to_tensor(src)),
            "target": torch.from_numpy(rgb8_to_tensor(dst)),
            "index": index,
        }


class SyntheticPairs(PairDataset):
    """``count`` procedural facades of one split, drawn on the fly at ``image_size``
    (at least 64 px, so small test models still see clean shapes)."""

    def __init__(self, opts: DataOptions, count: int, split: str = "train", data_seed: int = 0):
        super().__init__(opts)
        self.count, self.offset, self.data_seed = count, SPLIT_OFFSETS[split], data_seed
        self.draw_size = max(64, opts.image_size)

    def __len__(self) -> int:
        return self.count

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return synthetic_pair(self.offset + index, self.data_seed, self.draw_size)


class FilePairs(PairDataset):
    """Pairs read from disk; unreadable or malformed files were dropped at scan time."""

    def __init__(self, opts: DataOptions, files: list[tuple[Path, ...]], aligned: bool) -> None:
        super().__init__(opts)
        self.files, self.aligned = files, aligned

    def __len__(self) -> int:
        return len(self.files)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        paths = self.files[index]
        imgs = [read_rgb(p) for p in paths]
        if any(i is None for i in imgs):  # changed on disk after the scan
            raise DataError(f"{paths[0]}: became unreadable during training.")
        if self.aligned:
            img = imgs[0]
            w = img.shape[1] // 2
            return img[:, :w], img[:, w:]
        return imgs[0], imgs[1]


def _scan_image(path: Path) -> tuple[np.ndarray | None, str | None]:
    """Decode ``path`` for the scan, reading the file once: ``(image, None)`` when usable, or
    ``(None, why)`` ("truncated JPEG", "unreadable").

    The truncation check runs on the bytes before decoding, so a cut-off JPEG is named as such
    whether or not the decoder would accept it.
    """
    try:
        data = read_input_bytes(path)  # a FIFO or device file: refused by kind, never opened
    except DataError as exc:
        return None, str(exc).removeprefix(f"{path}: ").rstrip(".")
    if jpeg_data_truncated(data):
        return None, "truncated JPEG"
    try:
        return decode_image(data, path), None  # as an image viewer shows it (EXIF orientation)
    except DataError:
        return None, "unreadable"


def _check_aligned(path: Path) -> str | None:
    """Why ``path`` is not a usable aligned image, or None when it is."""
    img, why = _scan_image(path)
    if img is None:
        return why
    h, w = img.shape[:2]
    if w % 2 != 0 or w != 2 * h:
        return f"not two square halves side by side ({w}x{h}, expected width = 2 x height)"
    return None


def _warn_skipped(skipped: list[tuple[Path, str]], folder: Path) -> None:
    if skipped:
        names = ", ".join(f"{p.name} ({why})" for p, why in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning("%s: skipped %d file(s): %s%s", folder, len(skipped), names, more)


def scan_aligned(folder: Path) -> tuple[list[tuple[Path, ...]], list[tuple[Path, str]]]:
    """Usable aligned images of ``folder`` and the skipped ones with the reason."""
    good, bad = [], []
    for p in list_images(folder):
        why = _check_aligned(p)
        (bad.append((p, why)) if why else good.append((p,)))
    return good, bad


def scan_paired(a_dir: Path, b_dir: Path) -> tuple[list[tuple[Path, ...]], list[tuple[Path, str]]]:
    """Pairs of files with the same stem in ``a_dir`` and ``b_dir``; the rest are skipped."""
    a = {p.stem: p for p in list_images(a_dir)}
    b = {p.stem: p for p in list_images(b_dir)}
    good, bad = [], []
    for stem in sorted(set(a) | set(b)):
        if stem not in a or stem not in b:
            bad.append(((a.get(stem) or b[stem]), "no partner with the same name in A/ and B/"))
            continue
        problem = None
        for p in (a[stem], b[stem]):
            why = _scan_image(p)[1]
            if why is not None:
                problem = (p, why)
                break
        if problem is not None:
            bad.append(problem)
            continue
        good.append((a[stem], b[stem]))
    return good, bad


def _split_dirs(root: Path, split: str) -> tuple[str, Path] | None:
    """Where ``split`` lives: ("aligned", dir) or ("paired", dir holding A/ and B/)."""
    d = root / split
    if (d / "A").is_dir() and (d / "B").is_dir():
        return "paired", d
    if d.is_dir():
        return "aligned", d
    return None


def build_datasets(
    data: str, opts: DataOptions, synthetic_train: int = 400, synthetic_val: int = 20
) -> tuple[PairDataset, PairDataset | None]:
    """The train and val datasets for ``--data`` (``synthetic`` or a folder).

    Raises:
        DataError: the folder is missing, holds no usable pairs, or has an unknown layout.
    """
    val_opts = DataOptions(**{**opts.__dict__, "train": False})
    if data == "synthetic":
        return (
            SyntheticPairs(opts, synthetic_train, "train", opts.seed),
            SyntheticPairs(val_opts, synthetic_val, "val", opts.seed),
        )
    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: data folder not found (use --data synthetic or a folder).")
    if not root.is_dir():
        raise DataError(f"{root}: --data must be a folder (or 'synthetic').")

    def load(kind: str, d: Path) -> tuple[list[tuple[Path, ...]], bool]:
        files, skipped = scan_aligned(d) if kind == "aligned" else scan_paired(d / "A", d / "B")
        _warn_skipped(skipped, d)
        return files, kind == "aligned"

    train_loc = _split_dirs(root, "train")
    if train_loc is None and (root / "A").is_dir() and (root / "B").is_dir():
        # Paired, unsplit: the last 10% (at least one pair) validate.
        files, aligned = load("paired", root)
        if not files:
            raise DataError(f"{root}: no usable pairs in A/ and B/ (matching file names).")
        n_val = max(1, len(files) // 10) if len(files) > 1 else 0
        train_files, val_files = files[: len(files) - n_val], files[len(files) - n_val :]
        return (
            FilePairs(opts, train_files, aligned),
            FilePairs(val_opts, val_files, aligned) if val_files else None,
        )
    if train_loc is None:
        raise DataError(
            f"{root}: no train/ split and no A/ + B/ subfolders (expected the aligned layout "
            "DIR/train/*.jpg or the paired layout DIR/A, DIR/B)."
        )
    train_files, aligned = load(*train_loc)
    if not train_files:
        raise DataError(f"{train_loc[1]}: no usable training images.")
    val_ds = None
    for split in ("val", "test"):
        loc = _split_dirs(root, split)
        if loc is not None:
            files, val_aligned = load(*loc)
            if files:
                val_ds = FilePairs(val_opts, files, val_aligned)
                break
    if val_ds is None:
        log.warning("%s: no val/ or test/ split with usable images: validation is skipped.", root)
    return FilePairs(opts, train_files, aligned), val_ds


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` keys: a seeded permutation of the dataset for ``epoch``,
    sharded across DDP ranks, starting after ``skip_batches`` already-trained batches.

    Every rank sees ``ceil(n / world)`` samples (the permutation is padded by wrapping, like
    ``DistributedSampler``), so all ranks run the same number of steps.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        batch_size: int = 1,
        skip_batches: int = 0,
    ) -> None:
        self.n, self.seed, self.epoch = n, seed, epoch
        self.rank, self.world, self.batch_size, self.skip = rank, world, batch_size, skip_batches

    def indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per_rank = -(-self.n // self.world)
        perm = (perm * (per_rank * self.world // max(1, self.n) + 1))[: per_rank * self.world]
        return perm[self.rank :: self.world][self.skip * self.batch_size :]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.indices()])

    def __len__(self) -> int:
        return len(self.indices())


def batches_per_epoch(n: int, world: int, batch_size: int) -> int:
    """Optimiser steps in one epoch (the last partial batch counts)."""
    per_rank = -(-n // world)
    return -(-per_rank // batch_size)
