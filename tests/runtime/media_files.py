"""Real media for the runtime tests, written with OpenCV. Imported as ``runtime.media_files``
(tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(
    path: Path, n: int, fps: float = 12.0, size: tuple[int, int] = (48, 36), codec: str = "MJPG"
) -> Path:
    """An n-frame video whose frame i is a gradient shifted by i (so frames differ)."""
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    assert vw.isOpened()
    base = np.linspace(0, 200, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    for i in range(n):
        vw.write(np.clip(base + 3 * i, 0, 255).astype(np.uint8))
    vw.release()
    return path


def random_bgr(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_image_tree(root: Path) -> Path:
    """photos/ with 4 good images (one in a sub-folder), gray, RGBA and 16-bit PNGs, an empty
    file, a truncated JPEG, a text file named .png, and a notes.txt (ignored)."""
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.jpg"), random_bgr(32, 32, 0))
    cv2.imwrite(str(root / "b.png"), random_bgr(30, 40, 1))
    cv2.imwrite(str(root / "sub" / "c.bmp"), random_bgr(20, 20, 2))
    cv2.imwrite(str(root / "d.webp"), random_bgr(32, 48, 3))
    cv2.imwrite(str(root / "gray.png"), random_bgr(24, 24, 4)[:, :, 0])
    rgba = np.dstack([random_bgr(24, 24, 5), np.full((24, 24), 128, np.uint8)])
    cv2.imwrite(str(root / "rgba.png"), rgba)
    cv2.imwrite(str(root / "deep.png"), (random_bgr(24, 24, 6).astype(np.uint16) * 257))
    (root / "empty.jpg").write_bytes(b"")
    good = cv2.imencode(".jpg", random_bgr(32, 32, 7))[1].tobytes()
    (root / "sub" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "fake.png").write_bytes(b"this is not a png")
    (root / "notes.txt").write_text("not an image")
    return root


GOOD_IMAGES = ["a.jpg", "b.png", "d.webp", "deep.png", "gray.png", "rgba.png", "sub/c.bmp"]
BAD_IMAGES = ["empty.jpg", "fake.png", "sub/truncated.jpg"]
