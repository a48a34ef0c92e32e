"""Calibration and held-out images for the INT8 export.

Two sources, the same shape out of both:

* a folder (``--calib DIR``): any folder ``p2p run`` accepts (walked recursively, sorted; every
  readable image is fitted to S x S by stretching, as ``p2p run`` does by default; videos and
  unreadable files are left out and counted);
* the checkpoint's own kind of data (the default): for a run trained on the synthetic facades,
  synthetic inputs drawn by a *provider* the caller passes in (``train/`` owns the drawing and
  export may not import it; the CLI wires the two together).

The calibration images and the held-out images that the quality gate uses never overlap: from a
folder the held-out images are the last ones in sorted order, from the synthetic data they come
from another split (other indices of the procedural generator).

An export with dynamic height and width (``p2p export --spatial MIN:OPT:MAX``) is calibrated at
the sizes it will run: every calibration image at OPT (the histogram calibrators stack each
tensor over the images, which must then share one size), the held-out images at MIN, OPT and
MAX in turn (:func:`gate_sizes`), so the gate's figure covers every size of the profile. A
folder image is brought to a size by reflect-padding when that is how ``p2p run --resize
native`` would run it at that size, else by scaling to cover it and cropping the centre.
The calibrator holds every activation of every calibration image at once (about 0.6 GB per
768x1280 image for the full-size generator), so large sizes calibrate on fewer images
(:func:`calibration_count`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.errors import DataError, P2PError, UsageError
from p2p_deploy.imaging import bgr8_to_tensor, rgb8_to_tensor
from p2p_deploy.models.card import DEFAULT_DIRECTION, ModelCard
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.spatial import Size, SpatialProfile, padded_size

log = logging.getLogger(__name__)

DEFAULT_CALIB_COUNT = 32
DEFAULT_HOLDOUT = 8
MIN_IMAGES = 2  # one to calibrate on, one to check
# What the calibrator may hold (every activation of every calibration image, float32).
CALIB_MEMORY_BYTES = 4 << 30

# (index, size, seed, direction) -> the index-th synthetic *input* image of that run:
# (size, size, 3) uint8 RGB (a label map for BtoA, a photo for AtoB).
SyntheticProvider = Callable[[int, int, int, str], np.ndarray]

# Index ranges of the synthetic provider: calibration and held-out images come from disjoint
# ranges, and neither from the first indices the training run itself drew.
SYNTH_CALIB_OFFSET = 5_000_000
SYNTH_HOLDOUT_OFFSET = 6_000_000


@dataclass(frozen=True)
class CalibrationSet:
    """Images for calibration and for the quality gate.

    Attributes:
        calib: (n, 3, H, W) float32 RGB in [-1, 1], the quantizer's calibration inputs (S x S,
            or a spatial profile's OPT).
        holdout: (m, 3, S, S) float32 RGB in [-1, 1], never among ``calib``; with a spatial
            profile a list of (3, H, W) arrays at its MIN, OPT and MAX in turn.
        source: where they came from (a folder path, or ``synthetic facades (seed 0, BtoA)``).
        skipped: files of the folder left out (unreadable, or videos).
    """

    calib: np.ndarray
    holdout: np.ndarray | list[np.ndarray]
    source: str
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "images": int(len(self.calib)),
            "held_out_images": int(len(self.holdout)),
            "skipped_files": self.skipped,
        }
        sizes = list(dict.fromkeys(tuple(x.shape[-2:]) for x in self.holdout))
        if len(sizes) > 1 or sizes[:1] != [tuple(self.calib.shape[-2:])]:
            d["calibration_size"] = list(self.calib.shape[-2:])
            d["gate_sizes"] = [list(s) for s in sizes]
        return d


def gate_sizes(spatial: SpatialProfile) -> list[Size]:
    """The sizes the held-out images are checked at: MIN, OPT and MAX (distinct ones)."""
    return list(dict.fromkeys(spatial.sizes()))


def calibration_count(cfg: GeneratorConfig, size: Size, wanted: int) -> int:
    """``wanted`` calibration images, or fewer (at least 1) when ``wanted`` images of ``size``
    would make the calibrator hold more than :data:`CALIB_MEMORY_BYTES` of activations."""
    from p2p_deploy.models.flops import activation_elements

    per_image = 4 * activation_elements(cfg, size)
    return max(1, min(wanted, CALIB_MEMORY_BYTES // per_image))


def to_size(frame: np.ndarray, size: Size, stride: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) for ``size`` (h, w): reflect-padded as ``--resize native``
    pads it when that gives exactly ``size``, else scaled to cover ``size`` and centre-cropped."""
    import cv2

    from p2p_deploy.media.resize import fit_native

    h, w = size
    if padded_size(frame.shape[:2], stride) == (h, w):
        return fit_native(frame, stride)[0]
    scale = max(h / frame.shape[0], w / frame.shape[1])
    sh, sw = max(h, round(frame.shape[0] * scale)), max(w, round(frame.shape[1] * scale))
    shrink = sh * sw < frame.shape[0] * frame.shape[1]
    big = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    y0, x0 = (sh - h) // 2, (sw - w) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def split_counts(
    available: int, calib_count: int, holdout: int = DEFAULT_HOLDOUT
) -> tuple[int, int]:
    """(calibration, held-out) counts from ``available`` images: the held-out set is up to
    ``holdout`` images but at most a fifth of them (at least one); calibration takes up to
    ``calib_count`` of the rest."""
    if available < MIN_IMAGES:
        raise DataError(
            f"INT8 calibration needs at least {MIN_IMAGES} images (one to calibrate on, one "
            f"held out to check the result); found {available}."
        )
    n_hold = max(1, min(holdout, available // 5))
    return min(calib_count, available - n_hold), n_hold


@dataclass
class _FolderFiles:
    """A calibration folder's files: images in sorted order, and what else it holds."""

    images: list[Path]
    videos: int
    other: int
    problems: list[tuple[Path, str]]

    def none_usable(self, root: Path, readable: int = 0) -> DataError:
        """The error for a folder without enough usable images, saying what it holds."""
        held = []
        if self.videos:
            held.append(f"{self.videos} video(s), which calibration does not read")
        if self.images:
            held.append(f"{len(self.images)} image file(s), {readable} readable")
        if self.other:
            held.append(f"{self.other} other file(s)")
        if self.problems:
            held.append(f"{len(self.problems)} unreadable entrie(s) ({self.problems[0][1]})")
        what = "; ".join(held) if held else "nothing"
        only = " only videos" if self.videos and not self.images else ""
        return DataError(
            f"{root}: --calib holds{only or ' no usable images'} ({what}); INT8 calibration "
            f"needs at least {MIN_IMAGES} readable images (one to calibrate on, one held out "
            "to check the result)."
        )


def _folder_files(root: Path) -> _FolderFiles:
    """The files of ``root`` (recursive, sorted, hidden ones left out) by kind, through the
    one input walk (a FIFO or an unreadable folder is a problem, never a hang or a skip)."""
    from p2p_deploy.media.files import media_kind
    from p2p_deploy.media.inputs import walk_inputs

    images: list[Path] = []
    videos = other = 0
    problems: list[tuple[Path, str]] = []
    for listing in walk_inputs(root):
        listing.dirs[:] = [d for d in listing.dirs if not d.startswith(".")]
        problems += [(p, why) for p, why in listing.problems if not p.name.startswith(".")]
        for name in listing.files:
            if name.startswith("."):
                continue
            kind = media_kind(Path(name))
            if kind == "image":
                images.append(listing.folder / name)
            elif kind == "video":
                videos += 1
            else:
                other += 1
    return _FolderFiles(sorted(images), videos, other, problems)


def check_calibration_source(
    checkpoint: str | Path,
    calib_dir: str | Path | None,
    calib_count: int = DEFAULT_CALIB_COUNT,
    provider: SyntheticProvider | None = None,
) -> None:
    """Before any export work: the INT8 calibration images will be there. A ``--calib``
    folder must hold at least two readable images (decoded here; a folder of videos is said
    to be one); without it the checkpoint's card must name synthetic data and a provider be
    given (:func:`default_calibration`'s rule, read from the card alone).

    Raises:
        P2PError / DataError: the same sentences the calibration step itself would give.
    """
    from p2p_deploy.media.images import read_image
    from p2p_deploy.models.card import read_card
    from p2p_deploy.models.opening import resolve_model_path

    if calib_dir is not None:
        root = Path(calib_dir)
        if not root.is_dir():
            what = "not a folder" if root.exists() else "no such folder"
            raise UsageError(f"{root}: --calib must be a folder of images ({what}).")
        files = _folder_files(root)
        readable = 0
        for p in files.images:
            try:
                read_image(p)
            except DataError:
                continue
            readable += 1
            if readable == MIN_IMAGES:
                return
        raise files.none_usable(root, readable)
    weights, kind = resolve_model_path(checkpoint)
    card = read_card(weights) if kind == "checkpoint" else None
    if not isinstance(card, ModelCard):
        card = None
    if card is None:
        raise P2PError(
            f"{checkpoint}: its metadata does not say what data it was trained on; give "
            "--calib DIR with images like the ones the model will translate (a few dozen are "
            "enough)."
        )
    data = card.training.data if card.training is not None else None
    if data != "synthetic" or provider is None:
        default_calibration(checkpoint, card, None, 1)  # raises, saying why


def folder_images(
    folder: str | Path,
    size: int,
    calib_count: int = DEFAULT_CALIB_COUNT,
    holdout: int = DEFAULT_HOLDOUT,
    spatial: SpatialProfile | None = None,
    stride: int = 1,
) -> CalibrationSet:
    """Calibration and held-out images from ``folder`` (see the module docstring): S x S
    (``size``), or with ``spatial`` calibration at its OPT and held-out images at its MIN,
    OPT and MAX in turn (``stride``: the model's, for the reflect padding).

    Raises:
        DataError: the folder is missing, not a folder, or holds fewer than 2 readable images
            (the message says when it holds only videos).
    """
    from p2p_deploy.media.images import read_image
    from p2p_deploy.media.resize import fit

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: --calib must be a folder of images (no such folder).")
    files = _folder_files(root)
    images = files.images
    skipped = files.videos + files.other + len(files.problems)
    for p, why in files.problems:
        log.warning("calibration: %s: %s", p, why)
    try:
        n_cal, n_hold = split_counts(len(images), calib_count, holdout)
    except DataError:
        raise files.none_usable(root) from None

    def fitted(img: np.ndarray, k: int, held_out: bool) -> np.ndarray:
        if spatial is None:
            return fit(img, size, "stretch")[0]
        sizes = gate_sizes(spatial) if held_out else [spatial.opt]
        return to_size(img, sizes[k % len(sizes)], stride)

    def read(paths: list[Path], want: int, held_out: bool) -> tuple[list[np.ndarray], int]:
        """Up to ``want`` readable images of ``paths`` in order, and how many paths that took
        (a big folder is never read whole); unreadable ones are warned about and counted."""
        nonlocal skipped
        out: list[np.ndarray] = []
        taken = 0
        for p in paths:
            if len(out) == want:
                break
            taken += 1
            try:
                out.append(fitted(read_image(p), len(out), held_out))
            except DataError as exc:
                log.warning("calibration: %s", exc)
                skipped += 1
        return out, taken

    # The held-out images are the last ones; calibration takes from the front, never past them.
    hold, taken = read(images[::-1], n_hold, held_out=True)
    calib, _ = read(images[: len(images) - taken], n_cal, held_out=False)
    if not hold or not calib:
        raise DataError(
            f"{root}: INT8 calibration needs at least {MIN_IMAGES} readable images (one to "
            f"calibrate on, one held out); {skipped} files could not be used."
        )
    if spatial is None:
        held: np.ndarray | list[np.ndarray] = bgr8_to_tensor(hold[::-1])
    else:  # every gate size at least once, even from fewer held-out images
        sizes = gate_sizes(spatial)
        held = [bgr8_to_tensor(x)[0] for x in hold]
        held += [
            bgr8_to_tensor(to_size(hold[0], hw, stride))[0] for hw in sizes[len(hold) :]
        ]
    return CalibrationSet(
        calib=bgr8_to_tensor(calib),
        holdout=held,
        source=str(root),
        skipped=skipped,
    )


def synthetic_images(
    provider: SyntheticProvider,
    size: int,
    *,
    seed: int = 0,
    direction: str = "BtoA",
    calib_count: int = DEFAULT_CALIB_COUNT,
    holdout: int = DEFAULT_HOLDOUT,
    spatial: SpatialProfile | None = None,
) -> CalibrationSet:
    """Calibration and held-out images from the synthetic facades ``provider`` (disjoint
    index ranges, see :data:`SYNTH_CALIB_OFFSET`): S x S (``size``), or with ``spatial``
    calibration at its OPT and held-out images at its MIN, OPT and MAX in turn (each drawn as
    a square of its longer side, centre-cropped)."""
    if calib_count < 1:
        raise P2PError(f"--calib-count must be at least 1, got {calib_count}.")

    def draw(index: int, hw: Size) -> np.ndarray:
        h, w = hw
        side = max(h, w)
        img = provider(index, side, seed, direction)
        y0, x0 = (side - h) // 2, (side - w) // 2
        return rgb8_to_tensor(np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w]))

    what = "label maps" if direction == "BtoA" else "photos"
    source = f"synthetic facades {what} (seed {seed}, {direction})"
    if spatial is None:
        sq = (size, size)
        return CalibrationSet(
            calib=np.stack([draw(SYNTH_CALIB_OFFSET + i, sq) for i in range(calib_count)]),
            holdout=np.stack([draw(SYNTH_HOLDOUT_OFFSET + i, sq) for i in range(holdout)]),
            source=source,
        )
    sizes = gate_sizes(spatial)
    return CalibrationSet(
        calib=np.stack([draw(SYNTH_CALIB_OFFSET + i, spatial.opt) for i in range(calib_count)]),
        holdout=[
            draw(SYNTH_HOLDOUT_OFFSET + i, sizes[i % len(sizes)])
            for i in range(max(holdout, len(sizes)))
        ],
        source=source,
    )


def default_calibration(
    checkpoint: str | Path,
    card: ModelCard,
    provider: SyntheticProvider | None,
    calib_count: int = DEFAULT_CALIB_COUNT,
    spatial: SpatialProfile | None = None,
) -> CalibrationSet:
    """The checkpoint's own kind of data (its card's ``training.data``): synthetic facades,
    at the card's image size, seed and direction, for a synthetic run.

    Raises:
        P2PError: the checkpoint does not say it was trained on synthetic data (a folder, a
            canonical .pth), or no provider was given: the user must pass ``--calib DIR``.
    """
    training = card.training
    data = training.data if training is not None else None
    if data == "synthetic" and provider is not None:
        return synthetic_images(
            provider,
            card.image_size,
            seed=(training.seed if training is not None else None) or 0,
            direction=card.direction or DEFAULT_DIRECTION,
            calib_count=calib_count,
            spatial=spatial,
        )
    if data and data != "synthetic":
        why = f"it was trained on {data}"
    elif data == "synthetic":
        why = "no synthetic data provider was given"
    else:
        why = "its metadata does not say what data it was trained on"
    raise P2PError(
        f"{checkpoint}: {why}; give --calib DIR with images like the ones the model will "
        "translate (a few dozen are enough)."
    )
