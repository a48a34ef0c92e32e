"""Data folders, augmentation and the bad inputs."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from p2p_deploy.errors import DataError
from p2p_deploy.train.augment import apply_jitter, jitter_params
from p2p_deploy.train.datasets import DataOptions, EpochSampler, batches_per_epoch, build_datasets

OPTS = DataOptions(image_size=32, load_size=36, direction="AtoB", seed=0)


def _colour(t: torch.Tensor) -> np.ndarray:
    return t.mean(dim=(1, 2)).numpy()


def test_aligned_direction_and_range(aligned_dir: Path) -> None:
    tr, va = build_datasets(str(aligned_dir), OPTS)
    assert len(tr) == 4 and va is not None and len(va) == 2
    item = tr[(0, 1)]
    assert item["input"].shape == (3, 32, 32) and item["input"].dtype == torch.float32
    assert item["input"].min() >= -1 and item["input"].max() <= 1
    # AtoB: the input is the left half (red in RGB), the target the right (blue).
    assert _colour(item["input"])[0] > 0 and _colour(item["target"])[2] > 0
    tr_b, _ = build_datasets(str(aligned_dir), DataOptions(32, 36, "BtoA"))
    assert _colour(tr_b[(0, 1)]["input"])[2] > 0


def test_paired_folders(tmp_path: Path) -> None:
    root = tmp_path / "paired"
    for sub, colour in (("A", (0, 0, 255)), ("B", (255, 0, 0))):
        (root / sub).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(root / sub / f"{i}.png"), np.full((24, 24, 3), colour, np.uint8))
    cv2.imwrite(str(root / "A" / "lonely.png"), np.zeros((24, 24, 3), np.uint8))
    tr, va = build_datasets(str(root), OPTS)
    assert len(tr) == 4 and len(va) == 1  # the last 10% (>= 1) validate
    assert _colour(tr[(0, 0)]["input"])[0] > 0.9


def test_same_crop_and_flip_for_both_halves() -> None:
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    p = jitter_params(0, 3, 5, 36, 32)
    a, b = apply_jitter([img, img.copy()], p, 36, 32)
    assert np.array_equal(a, b) and a.shape == (32, 32, 3)
    assert jitter_params(0, 3, 5, 36, 32) == p  # a function of (seed, epoch, index)
    draws = {jitter_params(0, e, 5, 36, 32) for e in range(20)}
    assert len(draws) > 5 and any(d.flip for d in draws) and any(not d.flip for d in draws)
    assert not jitter_params(0, 1, 1, 36, 32, jitter=False, flip=False).flip


def test_sampler_shards_and_skips() -> None:
    full = EpochSampler(10, 0, 2).indices()
    assert sorted(full) == list(range(10))
    r0, r1 = EpochSampler(10, 0, 2, 0, 2).indices(), EpochSampler(10, 0, 2, 1, 2).indices()
    assert sorted(r0 + r1) == list(range(10))
    assert EpochSampler(10, 0, 2, batch_size=2, skip_batches=2).indices() == full[4:]
    assert EpochSampler(10, 0, 3).indices() != full
    assert batches_per_epoch(10, 2, 2) == 3


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        build_datasets(str(tmp_path / "nope"), OPTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train/ split"):
        build_datasets(str(tmp_path / "empty"), OPTS)
    (tmp_path / "empty" / "train").mkdir()
    with pytest.raises(DataError, match="no usable training images"):
        build_datasets(str(tmp_path / "empty"), OPTS)


def test_bad_files_skipped_counted_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, write_aligned
) -> None:
    root = tmp_path / "d"
    write_aligned(root / "train", 2)
    cv2.imwrite(str(root / "train" / "square.png"), np.zeros((20, 20, 3), np.uint8))
    cv2.imwrite(str(root / "train" / "odd.png"), np.zeros((20, 41, 3), np.uint8))
    (root / "train" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with caplog.at_level(logging.WARNING):
        tr, va = build_datasets(str(root), OPTS)
    assert len(tr) == 2 and va is None
    text = caplog.text
    assert "skipped 3 file(s)" in text
    for name in ("square.png", "odd.png", "broken.jpg (unreadable)"):
        assert name in text
    assert "validation is skipped" in text


def test_only_bad_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d" / "train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "d" / "train" / "sq.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match="no usable training images"):
        build_datasets(str(tmp_path / "d"), OPTS)


def test_synthetic_dataset_val_is_distinct() -> None:
    tr, va = build_datasets("synthetic", DataOptions(32, 36, "BtoA"), 3, 2)
    assert len(tr) == 3 and len(va) == 2
    assert not torch.equal(tr[(0, 0)]["target"], va[(0, 0)]["target"])


def test_truncated_jpeg_is_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # OpenCV decodes a cut-off JPEG without an error (the missing rows come out gray), so a
    # truncated download used to be trained on silently.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)
    root = tmp_path / "d"
    (root / "train").mkdir(parents=True)
    ok, jpeg = cv2.imencode(".jpg", img)
    ok2, progressive = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and ok2
    (root / "train" / "good.jpg").write_bytes(jpeg.tobytes())
    (root / "train" / "prog.jpg").write_bytes(progressive.tobytes())
    (root / "train" / "trailer.jpg").write_bytes(jpeg.tobytes() + b"appended bytes")
    (root / "train" / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) * 2 // 3])
    assert cv2.imread(str(root / "train" / "cut.jpg")) is not None  # why a check is needed
    with caplog.at_level(logging.WARNING):
        tr, _ = build_datasets(str(root), OPTS)
    assert len(tr) == 3
    assert "skipped 1 file(s): cut.jpg (truncated JPEG)" in caplog.text

    # Paired layout: the pair whose B is cut off is dropped, naming that file.
    for sub in ("A", "B"):
        (root / "p" / sub).mkdir(parents=True)
        for name in ("1.jpg", "2.jpg"):
            (root / "p" / sub / name).write_bytes(jpeg.tobytes())
    (root / "p" / "B" / "2.jpg").write_bytes(jpeg.tobytes()[:300])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tr, va = build_datasets(str(root / "p"), OPTS)
    assert len(tr) == 1 and va is None
    assert "2.jpg (truncated JPEG)" in caplog.text
