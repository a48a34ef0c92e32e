"""Fitting frames of any size to the model's input, and the inverse for its output.

Modes that fit a frame to the model's S x S square:
    * ``stretch``: resize to S x S, aspect ratio not kept; the output is resized back.
    * ``pad``: letterbox (scale the longer side to S, pad the rest with black, centred); the
      padding is cropped off the output before it is resized back, so the aspect ratio is kept.
    * ``crop``: scale the shorter side to S and keep the centre S x S; the output covers that
      centre region of the original only (at its original pixel size with ``keep_size``).

and the mode that keeps every pixel (the generator is fully convolutional):
    * ``native``: the frame at its own resolution, reflect-padded (centred) up to the next
      multiples of the model's stride ``2**n_down`` (and at least the smallest size the model
      takes); the padding is cropped off the output, which has the input's exact size. Frames
      beyond the largest size the model takes are run in overlapping tiles
      (:mod:`p2p_deploy.media.tiles`).
All frames are (H, W, 3) uint8 BGR.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from p2p_deploy.models.spatial import Size, padded_size

SQUARE_MODES: tuple[str, ...] = ("stretch", "pad", "crop")
NATIVE = "native"
RESIZE_MODES: tuple[str, ...] = (*SQUARE_MODES, NATIVE)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


@dataclass(frozen=True)
class Geometry:
    """How one frame was fitted: its size, the model size, and where its content lies.

    model_box: the content region inside the model frame (S x S; for ``native`` the padded
        frame, whose size is ``padded``).
    source_box: the region of the original frame that the content shows.
    size: S (for ``native``: the stride the frame was padded to multiples of).
    padded: (height, width) of the model frame for ``native`` (None: S x S).
    """

    mode: str
    height: int
    width: int
    size: int
    model_box: Box
    source_box: Box
    padded: Size | None = None

    def output_shape(self, keep_size: bool) -> tuple[int, int]:
        """(height, width) of what :func:`restore` returns."""
        x0, y0, x1, y1 = self.source_box if keep_size else self.model_box
        return y1 - y0, x1 - x0


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    # INTER_AREA avoids aliasing when shrinking; linear is the usual choice when enlarging.
    shrink = width * height < img.shape[0] * img.shape[1]
    return cv2.resize(
        img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def native_geometry(height: int, width: int, stride: int, minimum: Size = (1, 1)) -> Geometry:
    """Where an H x W frame lands in ``native`` mode: centred in the padded frame of
    :func:`~p2p_deploy.models.spatial.padded_size` (multiples of ``stride``, at least
    ``minimum``)."""
    ph, pw = padded_size((height, width), stride, minimum)
    x0, y0 = (pw - width) // 2, (ph - height) // 2
    return Geometry(
        NATIVE, height, width, stride, (x0, y0, x0 + width, y0 + height), (0, 0, width, height),
        padded=(ph, pw),
    )  # fmt: skip


def fit_native(
    frame: np.ndarray, stride: int, minimum: Size = (1, 1)
) -> tuple[np.ndarray, Geometry]:
    """(H, W, 3) uint8 -> (the frame reflect-padded to multiples of ``stride``, its Geometry).

    Reflection without repeating the edge pixel (OpenCV ``BORDER_REFLECT_101``, numpy's and
    torch's ``reflect``): the padding continues the picture instead of adding flat borders or
    black, which the generator would render as content."""
    geo = native_geometry(frame.shape[0], frame.shape[1], stride, minimum)
    x0, y0, x1, y1 = geo.model_box
    assert geo.padded is not None
    ph, pw = geo.padded
    if (ph, pw) == frame.shape[:2]:
        return np.ascontiguousarray(frame), geo
    out = cv2.copyMakeBorder(
        frame, y0, ph - y1, x0, pw - x1, cv2.BORDER_REFLECT_101
    )
    return out, geo


def geometry(height: int, width: int, size: int, mode: str) -> Geometry:
    """Where an H x W frame's content lands in S x S for a square ``mode`` (see the module
    docstring)."""
    if mode == "stretch":
        return Geometry(mode, height, width, size, (0, 0, size, size), (0, 0, width, height))
    if mode == "pad":
        scale = size / max(height, width)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        x0, y0 = (size - w) // 2, (size - h) // 2
        return Geometry(mode, height, width, size, (x0, y0, x0 + w, y0 + h), (0, 0, width, height))
    if mode == "crop":
        side = min(height, width)  # the centre square of the original, scaled to S x S
        x0, y0 = (width - side) // 2, (height - side) // 2
        return Geometry(
            mode, height, width, size, (0, 0, size, size), (x0, y0, x0 + side, y0 + side)
        )
    raise ValueError(f"resize mode must be one of {SQUARE_MODES}, got {mode!r}")


def fit(
    frame: np.ndarray, size: int, mode: str, minimum: Size = (1, 1)
) -> tuple[np.ndarray, Geometry]:
    """(H, W, 3) uint8 -> ((S, S, 3) uint8 model input, its :class:`Geometry`).

    ``native``: ``size`` is the model's stride and ``minimum`` the smallest (height, width)
    it takes; the model input is (H', W', 3), see :func:`fit_native`."""
    if mode == NATIVE:
        return fit_native(frame, size, minimum)
    geo = geometry(frame.shape[0], frame.shape[1], size, mode)
    sx0, sy0, sx1, sy1 = geo.source_box
    mx0, my0, mx1, my1 = geo.model_box
    content = _resize(frame[sy0:sy1, sx0:sx1], mx1 - mx0, my1 - my0)
    if (mx0, my0, mx1, my1) == (0, 0, size, size):
        return np.ascontiguousarray(content), geo
    out = np.zeros((size, size, 3), dtype=np.uint8)
    out[my0:my1, mx0:mx1] = content
    return out, geo


def restore(output: np.ndarray, geo: Geometry, keep_size: bool) -> np.ndarray:
    """The model's (S, S, 3) output -> the frame to save.

    ``keep_size``: at the original's pixel size (its source box); otherwise at model scale with
    the letterbox padding removed.
    """
    mx0, my0, mx1, my1 = geo.model_box
    content = output[my0:my1, mx0:mx1]
    if not keep_size:
        return np.ascontiguousarray(content)
    h, w = geo.output_shape(True)
    return np.ascontiguousarray(_resize(content, w, h))


def source_view(
    frame: np.ndarray, model_input: np.ndarray, geo: Geometry, keep_size: bool
) -> np.ndarray:
    """The input as shown beside the output in ``--side-by-side``: same size as :func:`restore`."""
    if keep_size:
        x0, y0, x1, y1 = geo.source_box
        return np.ascontiguousarray(frame[y0:y1, x0:x1])
    x0, y0, x1, y1 = geo.model_box
    return np.ascontiguousarray(model_input[y0:y1, x0:x1])
