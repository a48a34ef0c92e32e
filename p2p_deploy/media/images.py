"""Reading and writing still images with OpenCV, robustly.

Every image becomes (H, W, 3) uint8 BGR as an image viewer shows it: the EXIF orientation of a
phone photo is applied (OpenCV ignores it with ``IMREAD_UNCHANGED``), and grayscale, RGBA and
16-bit are converted, not refused (:func:`p2p_deploy.imaging.to_bgr8`). Files are read through
the one input-kind check (:func:`p2p_deploy.media.inputs.read_input_bytes`: a FIFO is never
opened). Problems raise :class:`DataError` with one sentence naming the file; writes are
atomic (temporary name in the same folder, then rename).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from p2p_deploy.atomic import write_bytes
from p2p_deploy.errors import DataError, first_line
from p2p_deploy.imaging import to_bgr8
from p2p_deploy.jpeg import jpeg_data_truncated
from p2p_deploy.media.inputs import read_input_bytes
from p2p_deploy.media.native import captured_native_stderr
from p2p_deploy.paths import as_path

# Refuse, rather than silently downscale, images above this many pixels: the model only sees
# S x S anyway, but --keep-size would make an output as large as the input and a 100 MP frame
# costs ~300 MB per copy in the queues. Refusing is explicit and keeps memory bounded.
DEFAULT_MAX_PIXELS = 40_000_000
# Keep the bit depth and the colour of the file, and apply its EXIF orientation (which OpenCV
# skips only with IMREAD_UNCHANGED); an alpha channel is dropped, as to_bgr8 would.
DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` into (H, W, 3) uint8 BGR.

    Raises:
        DataError: unreadable, empty, corrupt or truncated file, or more than ``max_pixels``.
    """
    path = as_path(path)
    return decode_image(read_input_bytes(path), path, max_pixels)


def decode_image(data: bytes, path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image file's bytes ``data`` (read from ``path``) as (H, W, 3) uint8 BGR, as an image
    viewer shows it (see the module docstring).

    Raises:
        DataError: empty, corrupt or truncated, or more than ``max_pixels``.
    """
    if not data:
        raise DataError(f"{path}: empty file.")
    try:
        with captured_native_stderr():  # libpng prints "libpng error: ..." on its own
            img = cv2.imdecode(np.frombuffer(data, np.uint8), DECODE_FLAGS)
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit (CV_IO_MAX_IMAGE_PIXELS)
        raise DataError(f"{path}: cannot decode image ({first_line(exc, 160)}).") from None
    if img is None:
        raise DataError(f"{path}: corrupt or truncated image (OpenCV cannot decode it).")
    if jpeg_data_truncated(data):
        # libjpeg fills the missing rows with gray and only warns, unnamed, on stderr.
        raise DataError(f"{path}: truncated JPEG (the data stops before its end marker).")
    h, w = img.shape[:2]
    if h * w > max_pixels:
        raise DataError(
            f"{path}: image is {w}x{h} = {h * w / 1e6:.0f} MP, above the limit of "
            f"{max_pixels / 1e6:.0f} MP (raise it with --max-pixels)."
        )
    try:
        return to_bgr8(img)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}.") from None


def write_image(path: str | Path, frame: np.ndarray) -> None:
    """Atomically write (H, W, 3) uint8 BGR ``frame`` to ``path`` (format from its extension).

    Raises:
        DataError: OpenCV cannot encode to this format, or the file cannot be written (the
            OS's reason: ``No space left on device``, ``Permission denied``, ...).
    """
    path = as_path(path)
    # Encode in memory, then write the bytes ourselves: cv2.imwrite only returns False, so a
    # full disk would read as an encoder problem; a Python write names the OS's reason.
    try:
        ok, data = cv2.imencode(path.suffix, frame)
    except cv2.error as exc:
        raise DataError(f"{path}: cannot encode image ({str(exc).strip()[-160:]}).") from None
    if not ok:
        raise DataError(f"{path}: OpenCV cannot encode {path.suffix or 'this'} images.")
    try:
        write_bytes(path, data)  # the encoder's buffer itself, not a copy of it
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc}).") from None
