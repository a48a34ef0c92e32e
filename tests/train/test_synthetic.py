"""Synthetic facades: deterministic, palette-exact labels, aligned files, the label video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from p2p_deploy.errors import DataError
from p2p_deploy.train.synthetic import (
    PALETTE_RGB,
    synthetic_pair,
    write_aligned_dataset,
    write_label_video,
)


def test_deterministic_and_distinct() -> None:
    p1, l1 = synthetic_pair(3, seed=7, size=64)
    p2, l2 = synthetic_pair(3, seed=7, size=64)
    assert p1.shape == l1.shape == (64, 64, 3) and p1.dtype == l1.dtype == np.uint8
    assert np.array_equal(p1, p2) and np.array_equal(l1, l2)
    p3, l3 = synthetic_pair(4, seed=7, size=64)
    assert not np.array_equal(l1, l3)
    assert not np.array_equal(synthetic_pair(3, seed=8, size=64)[1], l1)


def test_labels_use_only_the_palette_and_several_classes() -> None:
    _, lab = synthetic_pair(0, 0, 128)
    colours = {tuple(c) for c in lab.reshape(-1, 3)}
    palette = {tuple(c) for c in PALETTE_RGB}
    assert colours <= palette
    assert len(colours) >= 4  # background, facade, window, sill at least


def test_photo_follows_labels() -> None:
    # The photo is rendered from the label map: glass and wall have clearly different colours.
    photo, lab = synthetic_pair(1, 0, 128)
    rgb = photo.astype(np.float64)
    win = (lab == PALETTE_RGB[2]).all(axis=2)
    wall = (lab == PALETTE_RGB[1]).all(axis=2)
    assert win.sum() > 50 and wall.sum() > 50
    assert np.linalg.norm(rgb[win].mean(0) - rgb[wall].mean(0)) > 30


def test_write_aligned_dataset_keeps_existing(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    n = write_aligned_dataset(out, {"train": 3, "val": 1, "test": 1}, size=32, seed=0)
    assert n == {"train": 3, "val": 1, "test": 1}
    img = cv2.imread(str(out / "train" / "00001.png"))
    assert img.shape == (32, 64, 3)
    photo, lab = synthetic_pair(0, 0, 32)
    assert np.array_equal(img[:, 32:, ::-1], lab)  # PNG is lossless: right half = B = labels
    assert np.array_equal(img[:, :32, ::-1], photo)
    before = (out / "train" / "00001.png").stat().st_mtime_ns
    assert write_aligned_dataset(out, {"train": 4}, size=32)["train"] == 1
    assert (out / "train" / "00001.png").stat().st_mtime_ns == before


def test_label_video(tmp_path: Path) -> None:
    path = write_label_video(tmp_path / "labels.mp4", frames=6, size=64)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 6 and frames[0].shape == (64, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])  # it pans


def test_full_disk_names_the_os_reason_and_leaves_no_file(tmp_path: Path) -> None:
    """The synthetic images and label video go through media.images.write_image and
    media.video.VideoSink: on a full disk the error names the OS's reason (cv2.imwrite only
    said False) and nothing stays under a final name."""
    from smallfs import fill, tmpfs

    with tmpfs(tmp_path / "small", "256k") as fs:
        (fs / "syn" / "train").mkdir(parents=True)
        filler = fill(fs)
        with pytest.raises(DataError, match=r"00001\.png: cannot write \(No space left on device"):
            write_aligned_dataset(fs / "syn", {"train": 2}, size=32)
        with pytest.raises(DataError, match=r"labels\.mp4: cannot write \(No space left on devi"):
            write_label_video(fs / "syn" / "labels.mp4", frames=3, size=32)
        assert sorted(p.name for p in (fs / "syn").rglob("*")) == ["train"]
        filler.unlink()
        assert write_aligned_dataset(fs / "syn", {"train": 2}, size=32) == {"train": 2}


def test_label_video_under_a_file_names_the_os_reason(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"labels\.mp4: cannot write \(File exists\)"):
        write_label_video(tmp_path / "file" / "labels.mp4", frames=2, size=32)
