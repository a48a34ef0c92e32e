"""Procedural facades-like pairs: CMP-style label maps and matching rendered "photos".

The real pix2pix *facades* dataset pairs a photo (A, left) with a label map (B, right) drawn in
the CMP Facade Database classes. Here both are made procedurally, deterministically from
``(seed, index)``, in a few milliseconds with numpy/OpenCV drawing, so the project trains with
no download. Layout: a facade of floors x columns with windows (sills, blinds, moldings, deco
above), balconies, cornices between floors, pillars, a door or a shop front on the ground floor,
and sky background around it. The photo renders each class with a material colour, per-element
variation, brick/plaster texture, a vertical light gradient, window reflections and noise.

Palette: the 12 CMP classes in label order (1..12), coloured with the *jet* colormap sampled at
class centres ``(k + 0.5) / 12`` -- the blue-to-red look of the facades B images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from p2p_deploy.errors import DataError
from p2p_deploy.media.images import write_image
from p2p_deploy.media.video import VideoSink

CLASSES: tuple[str, ...] = (
    "background",
    "facade",
    "window",
    "door",
    "cornice",
    "sill",
    "balcony",
    "blind",
    "deco",
    "molding",
    "pillar",
    "shop",
)
# RGB, jet colormap at (k + 0.5) / 12 for class k (0-based) -- see the module docstring.
PALETTE_RGB: np.ndarray = np.array(
    [
        (0, 0, 173),
        (0, 0, 255),
        (0, 84, 255),
        (0, 168, 255),
        (22, 255, 225),
        (90, 255, 157),
        (157, 255, 90),
        (228, 255, 19),
        (255, 189, 0),
        (255, 111, 0),
        (255, 30, 0),
        (173, 0, 0),
    ],
    dtype=np.uint8,
)
C = {name: i for i, name in enumerate(CLASSES)}


def _rect(
    lab: np.ndarray,
    photo: np.ndarray,
    cls: str,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    colour: np.ndarray,
) -> None:
    """Fill [x0, x1) x [y0, y1) with class ``cls`` in the label map and ``colour`` in the photo."""
    h, w = lab.shape
    x0, x1 = max(0, x0), min(w, x1)
    y0, y1 = max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    lab[y0:y1, x0:x1] = C[cls]
    photo[y0:y1, x0:x1] = colour


def _jitter(
    rng: np.random.Generator, base: tuple[float, float, float], amount: float
) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.normal(0, amount, 3), 0, 255).astype(
        np.float32
    )


def _draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one facade: (label indices (S, S) uint8, flat-shaded photo (S, S, 3) float32 RGB)."""
    s = size
    lab = np.zeros((s, s), np.uint8)
    photo = np.empty((s, s, 3), np.float32)
    # Sky: a vertical blue-grey gradient behind everything.
    sky_top, sky_bottom = _jitter(rng, (120, 160, 210), 20), _jitter(rng, (190, 205, 225), 15)
    t = np.linspace(0, 1, s, dtype=np.float32)[:, None, None]
    photo[:] = sky_top * (1 - t) + sky_bottom * t

    wall = _jitter(
        rng, [(200, 180, 150), (170, 90, 70), (160, 160, 155), (215, 200, 170)][rng.integers(4)], 12
    )
    fx0 = int(s * rng.uniform(0.0, 0.08))
    fx1 = s - int(s * rng.uniform(0.0, 0.08))
    fy0 = int(s * rng.uniform(0.0, 0.15))
    _rect(lab, photo, "facade", fx0, fy0, fx1, s, wall)

    floors = int(rng.integers(3, 7))
    cols = int(rng.integers(2, 6))
    ground = bool(rng.random() < 0.8)  # a distinct ground floor (door / shop)
    floor_h = (s - fy0) / (floors + (0.3 if ground else 0))
    col_w = (fx1 - fx0) / cols
    glass = _jitter(rng, (60, 75, 95), 10)
    frame = _jitter(rng, (235, 232, 225), 8)
    stone = np.clip(wall * 1.15, 0, 255)

    pillars = rng.random() < 0.3
    if pillars:
        pw = max(2, int(col_w * 0.12))
        for c in range(cols + 1):
            px = int(fx0 + c * col_w) - pw // 2
            _rect(lab, photo, "pillar", px, fy0, px + pw, s, stone * 0.95)

    window_w = rng.uniform(0.35, 0.6)
    window_h = rng.uniform(0.45, 0.65)
    balcony_floor = set(rng.choice(floors, size=int(rng.integers(0, 3)), replace=False).tolist())
    blinds = rng.random() < 0.4
    mold = rng.random() < 0.5
    deco = rng.random() < 0.4
    upper_floors = floors - (1 if ground else 0)
    for f in range(upper_floors):
        y_top = fy0 + f * floor_h
        if f > 0 and rng.random() < 0.6:  # cornice band at the top of the floor
            ch = max(2, int(floor_h * 0.08))
            _rect(lab, photo, "cornice", fx0, int(y_top), fx1, int(y_top) + ch, stone)
        for c in range(cols):
            cx = fx0 + (c + 0.5) * col_w
            ww, wh = col_w * window_w, floor_h * window_h
            x0, x1 = int(cx - ww / 2), int(cx + ww / 2)
            y0 = int(y_top + floor_h * 0.2)
            y1 = int(y0 + wh)
            if mold:
                m = max(1, int(ww * 0.08))
                _rect(lab, photo, "molding", x0 - m, y0 - m, x1 + m, y1 + m, frame)
            if deco:
                _rect(
                    lab,
                    photo,
                    "deco",
                    x0,
                    y0 - int(floor_h * 0.12),
                    x1,
                    y0 - max(1, int(ww * 0.1)),
                    stone * 0.85,
                )
            _rect(lab, photo, "window", x0, y0, x1, y1, glass)
            if blinds:
                bh = int(wh * rng.uniform(0.1, 0.5))
                _rect(lab, photo, "blind", x0, y0, x1, y0 + bh, _jitter(rng, (110, 90, 70), 15))
            _rect(
                lab,
                photo,
                "sill",
                x0 - 2,
                y1,
                x1 + 2,
                y1 + max(2, int(floor_h * 0.05)),
                frame * 0.95,
            )
            if f in balcony_floor:
                by0 = int(y1 - wh * 0.3)
                _rect(
                    lab,
                    photo,
                    "balcony",
                    int(cx - col_w * 0.45),
                    by0,
                    int(cx + col_w * 0.45),
                    y1 + max(2, int(floor_h * 0.06)),
                    _jitter(rng, (50, 50, 55), 8),
                )
    if ground:
        gy0 = int(fy0 + upper_floors * floor_h)
        if rng.random() < 0.5:  # shop front along the ground floor
            _rect(
                lab,
                photo,
                "shop",
                fx0 + int(col_w * 0.1),
                gy0 + int(floor_h * 0.15),
                fx1 - int(col_w * 0.1),
                s,
                _jitter(rng, (40, 45, 60), 10),
            )
        else:
            dc = rng.integers(cols)
            cx = fx0 + (dc + 0.5) * col_w
            _rect(
                lab,
                photo,
                "door",
                int(cx - col_w * 0.25),
                gy0 + int(floor_h * 0.1),
                int(cx + col_w * 0.25),
                s,
                _jitter(rng, (100, 65, 40), 12),
            )
    return lab, photo


def _shade(rng: np.random.Generator, lab: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """Texture, light and noise on the flat photo -> (S, S, 3) uint8 RGB."""
    s = lab.shape[0]
    img = photo
    wall = (lab == C["facade"]) | (lab == C["pillar"]) | (lab == C["cornice"])
    # Brick/plaster courses: faint horizontal lines every few pixels on the wall.
    course = max(2, s // 48)
    rows = (np.arange(s) % course == 0)[:, None]
    img[wall & rows] *= 0.88
    # Reflections on glass: a diagonal brightness ramp.
    glass = (lab == C["window"]) | (lab == C["shop"])
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    ramp = 1.0 + 0.5 * np.clip(np.sin((xx + yy) / s * np.pi * rng.uniform(1, 3)), 0, 1)
    img[glass] *= ramp[glass, None]
    # Sunlight from one side and from above.
    side = rng.uniform(-0.25, 0.25)
    light = 1.0 + side * (xx / s - 0.5) - 0.15 * (yy / s)
    img *= light[..., None]
    img += rng.normal(0, 6.0, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_pair(index: int, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The ``index``-th synthetic pair of dataset ``seed``.

    Returns:
        ``(photo_rgb, label_rgb)``: two (size, size, 3) uint8 RGB arrays; ``photo`` is A and the
        label map is B in the facades convention (so label -> photo is ``BtoA``).
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    lab, flat = _draw(rng, size)
    photo = _shade(rng, lab, flat)
    return photo, PALETTE_RGB[lab]


def synthetic_labels(index: int, seed: int = 0, size: int = 256) -> np.ndarray:
    """Only the label map (class indices, (size, size) uint8 in 0..11) of a pair."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    return _draw(rng, size)[0]


def aligned_image(photo_rgb: np.ndarray, label_rgb: np.ndarray) -> np.ndarray:
    """A|B side by side as one (S, 2S, 3) uint8 **BGR** image, ready for :func:`write_image`."""
    return cv2.cvtColor(np.concatenate([photo_rgb, label_rgb], axis=1), cv2.COLOR_RGB2BGR)


# Split offsets keep train, val and test pairs distinct for the same seed.
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}


def write_aligned_dataset(
    out_dir: str | Path, counts: Mapping[str, int], size: int = 256, seed: int = 0, ext: str = "png"
) -> dict[str, int]:
    """Write ``OUT/{train,val,test}/NNNNN.png`` aligned A|B images ((size, 2*size) each).

    Files that already exist are kept as they are (inputs are never overwritten, and a killed
    run continues). Returns the number of images written per split.
    """
    out = Path(out_dir)
    written: dict[str, int] = {}
    for split, n in counts.items():
        if split not in SPLIT_OFFSETS:
            raise DataError(f"unknown split {split!r}: use train, val or test.")
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        written[split] = 0
        for i in range(int(n)):
            path = folder / f"{i + 1:05d}.{ext}"
            if path.exists():
                continue
            photo, label = synthetic_pair(SPLIT_OFFSETS[split] + i, seed, size)
            write_image(path, aligned_image(photo, label))
            written[split] += 1
    return written


def write_label_maps(out_dir: str | Path, count: int, size: int = 256, seed: int = 0) -> int:
    """Write ``OUT/NNNNN.png``: label maps alone ((size, size) BGR), the inputs ``p2p run`` takes.

    They are the B halves of the ``test`` split (same indices), so a run over them can be
    compared with the photos of ``OUT/../test``. Existing files are kept; returns how many
    were written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for i in range(int(count)):
        path = out / f"{i + 1:05d}.png"
        if path.exists():
            continue
        _, label = synthetic_pair(SPLIT_OFFSETS["test"] + i, seed, size)
        write_image(path, cv2.cvtColor(label, cv2.COLOR_RGB2BGR))
        written += 1
    return written


def write_label_video(
    path: str | Path, frames: int, size: int = 256, seed: int = 0, fps: float = 10.0
) -> Path:
    """Write an mp4 (``mp4v``) of ``frames`` label maps: a slow pan and zoom over a wide facade.

    The source is one synthetic label map drawn at twice ``size``; each frame crops a window that
    drifts and shrinks slightly, resized with nearest-neighbour so colours stay exact palette
    colours (up to the codec's loss). Frames are (size, size) BGR.
    """
    path = Path(path)
    if frames < 1:
        raise DataError("--video needs at least one frame.")
    big = cv2.cvtColor(PALETTE_RGB[synthetic_labels(3_000_000, seed, 2 * size)], cv2.COLOR_RGB2BGR)
    sink = VideoSink(path, "mp4v", fps, size, size)  # DataError: codecs that work here
    try:
        for k in range(frames):
            t = k / max(1, frames - 1)
            crop = int(round(2 * size * (0.9 - 0.3 * t)))  # zoom in slowly
            x0 = int(round((2 * size - crop) * t))  # pan left to right
            y0 = int(round((2 * size - crop) * 0.5 * (1 - t)))
            win = big[y0 : y0 + crop, x0 : x0 + crop]
            sink.write(cv2.resize(win, (size, size), interpolation=cv2.INTER_NEAREST))
    except BaseException:
        sink.abort()
        raise
    sink.finish()  # checked, then renamed onto ``path``; DataError with the OS's reason
    return path
