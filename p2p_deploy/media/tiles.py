"""Overlapping tiles for frames larger than a model takes, blended back with feathered seams.

``p2p run --resize native`` runs each frame at its own resolution; a frame beyond the largest
size the runner takes (a TensorRT profile's max, an export's spatial profile, ``--max-tile``)
is cut into tiles of at most that size, each tile translated on its own, and the outputs
blended back (phillipi/pix2pix#56 asks for exactly this), so memory stays bounded at any
resolution:

* tiles are as large as allowed (``tile = min(frame, limit)`` per dimension) and overlap by at
  least a quarter of a tile; their origins are spread evenly, the first at 0 and the last
  flush with the frame's end;
* each output pixel is a weighted mean of the tiles covering it: a tile's weight ramps up
  linearly across its overlap with the previous tile and down across its overlap with the next
  one (1 elsewhere, and 1 up to the frame's own borders), so the weights of the at most two
  tiles overlapping along each axis sum to one and seams fade instead of cutting.

A tile sees less context than the whole frame (and, with per-image statistics, normalises
with its own), so a tiled output differs slightly from an untiled one near the seams; the tests
state the tolerance. Arrays are (H, W, C) frames or (C, H, W) tensors (``channels_last``).
Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p2p_deploy.models.spatial import Size

MIN_OVERLAP_FRACTION = 4  # tiles overlap by at least tile // 4 along a tiled axis


def _origins(length: int, tile: int) -> list[int]:
    """Tile origins along one axis: one tile when it fits; else evenly spread, overlapping by
    at least ``tile // 4``, the last flush with the end."""
    if length <= tile:
        return [0]
    overlap = max(1, tile // MIN_OVERLAP_FRACTION)
    n = -(-(length - overlap) // (tile - overlap))
    n = max(n, 2)
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _ramp(origins: list[int], tile: int, length: int, k: int) -> np.ndarray:
    """Weights along one axis of tile ``k``: a linear ramp up across its overlap with tile
    ``k - 1``, down across its overlap with tile ``k + 1``, 1 elsewhere (at pixel centres, so
    never exactly 0 inside a tile)."""
    w = np.ones(tile, np.float32)
    o = origins[k]
    pos = np.arange(tile, dtype=np.float32) + 0.5
    if k > 0:
        end_prev = origins[k - 1] + tile  # the previous tile covers [.., end_prev)
        span = end_prev - o
        if span > 0:
            w = np.minimum(w, np.clip(pos / span, 0.0, 1.0))
    if k + 1 < len(origins):
        start_next = origins[k + 1] - o  # the next tile starts here (local coordinate)
        span = tile - start_next
        if span > 0:
            w = np.minimum(w, np.clip((tile - pos) / span, 0.0, 1.0))
    return w


@dataclass(frozen=True)
class TilePlan:
    """How one frame size is cut: the frame ``size``, the ``tile`` size and every tile's
    ``(y, x)`` origin (row-major)."""

    size: Size
    tile: Size
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def origins(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.rows for x in self.cols]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def weights(self) -> list[np.ndarray]:
        """Each tile's (th, tw) float32 blending weight, in :attr:`origins` order."""
        (h, w), (th, tw) = self.size, self.tile
        wy = [_ramp(list(self.rows), th, h, k) for k in range(len(self.rows))]
        wx = [_ramp(list(self.cols), tw, w, k) for k in range(len(self.cols))]
        return [np.outer(a, b) for a in wy for b in wx]


def plan_tiles(size: Size, limit: Size) -> TilePlan:
    """The tiles of a ``size`` (H, W) frame for a model that takes at most ``limit`` (both
    multiples of the model's stride, ``size`` at least the model's smallest size): tiles of
    ``min(size, limit)`` per axis (so a multiple of the stride too), see the module docstring.
    """
    (h, w), (lh, lw) = size, limit
    th, tw = min(h, lh), min(w, lw)
    return TilePlan(size, (th, tw), tuple(_origins(h, th)), tuple(_origins(w, tw)))


def cut(image: np.ndarray, plan: TilePlan, channels_last: bool) -> list[np.ndarray]:
    """``image`` ((H, W, C) when ``channels_last``, else (C, H, W)) -> its tiles, views in
    :attr:`TilePlan.origins` order."""
    th, tw = plan.tile
    if channels_last:
        return [image[y : y + th, x : x + tw] for y, x in plan.origins]
    return [image[:, y : y + th, x : x + tw] for y, x in plan.origins]


def blend(outputs: list[np.ndarray], plan: TilePlan, channels_last: bool) -> np.ndarray:
    """The tiles' outputs (in :attr:`TilePlan.origins` order, each shaped as :func:`cut`
    made them) -> one frame of ``plan.size``, feathered (see the module docstring), in the
    outputs' dtype (uint8 is rounded)."""
    (h, w), (th, tw) = plan.size, plan.tile
    c = outputs[0].shape[-1] if channels_last else outputs[0].shape[0]
    acc = np.zeros((h, w, c) if channels_last else (c, h, w), np.float32)
    total = np.zeros((h, w), np.float32)
    for (y, x), out, wgt in zip(plan.origins, outputs, plan.weights(), strict=True):
        if channels_last:
            acc[y : y + th, x : x + tw] += out.astype(np.float32) * wgt[:, :, None]
        else:
            acc[:, y : y + th, x : x + tw] += out.astype(np.float32) * wgt[None]
        total[y : y + th, x : x + tw] += wgt
    acc /= total[:, :, None] if channels_last else total[None]
    dtype = outputs[0].dtype
    if dtype == np.uint8:
        return np.clip(acc + 0.5, 0, 255).astype(np.uint8)
    return acc.astype(dtype, copy=False)
