"""Frames of any size through a runner that takes a bounded range: :class:`TilingRunner`.

``p2p run --resize native`` pads each frame up to multiples of the model's stride; a padded
frame the runner takes (and no larger than ``--max-tile``) is translated whole, a larger one in
overlapping tiles of at most the limit, blended back (:mod:`p2p_deploy.media.tiles`). Tiles of
one frame go through the runner ``tile_batch`` at a time, so memory is bounded by the tile size
whatever the frame's. The limit (:func:`tile_limit`):

* ``auto`` (the default): the largest size the runner takes (a TensorRT engine's profile max,
  an export's spatial profile max, S x S for a fixed-square export), or
  :data:`DEFAULT_MAX_TILE` for a checkpoint run by torch, which takes any size;
* ``HxW`` or ``S``: at most that (rounded down to the stride); more than the runner takes is
  refused in one line before any work;
* ``off``: never tile; a frame beyond the runner's largest size is refused, one line per
  input (the pipeline checks it when the frame is decoded, before it reaches the model).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from p2p_deploy.errors import P2PError
from p2p_deploy.media.tiles import TilePlan, blend, cut, plan_tiles
from p2p_deploy.models.spatial import Size, SizeRange, fits, format_size, parse_size, round_down
from p2p_deploy.runners.base import BatchError, DeviceStep, Pending, Runner, check_images

# Tile limit for a runner that takes any size (torch on a checkpoint): a 2048 x 2048 tile of the
# full-size generator holds a few GB of fp32 activations.
DEFAULT_MAX_TILE: Size = (2048, 2048)
MAX_TILE_WORDS = ("auto", "off")


def check_max_tile(text: str) -> None:
    """Raise P2PError unless ``text`` is ``auto``, ``off``, ``HxW`` or ``S`` (flag syntax only;
    :func:`tile_limit` checks it against the model)."""
    if str(text).strip().lower() not in MAX_TILE_WORDS:
        parse_size(text, "--max-tile")


def tile_limit(sizes: SizeRange, max_tile: str, model: str = "the model") -> Size | None:
    """The largest tile for a runner that takes ``sizes`` (see the module docstring); None for
    ``off``.

    Raises:
        P2PError: ``max_tile`` is not ``auto``/``off``/``HxW``/``S``, is smaller than the
            smallest size the runner takes, or larger than its largest (one line each).
    """
    word = str(max_tile).strip().lower()
    if word == "off":
        return None
    if word == "auto":
        if sizes.max is not None:
            return sizes.max
        s = sizes.stride
        return (round_down(DEFAULT_MAX_TILE[0], s), round_down(DEFAULT_MAX_TILE[1], s))
    h, w = parse_size(max_tile, "--max-tile")
    limit = (round_down(h, sizes.stride), round_down(w, sizes.stride))
    # The size asked for, not the rounded one: round_down never goes below one stride, so
    # 64 on a stride-128 model would silently become 128.
    if not fits(sizes.min, (h, w)):
        raise P2PError(
            f"--max-tile {max_tile}: below the smallest size {model} takes "
            f"({format_size(sizes.min)}; it takes {sizes.describe()})."
        )
    if sizes.max is not None and not fits(limit, sizes.max):
        raise P2PError(
            f"--max-tile {max_tile}: larger than {model} takes ({sizes.describe()}); give at most "
            f"{format_size(sizes.max)} or re-export with a larger `p2p export --spatial` MAX."
        )
    return limit


class TilingRunner(Runner):
    """``inner`` (an active runner) for frames of any size (multiples of its stride, at least
    its smallest size): whole when they fit ``limit``, else in blended tiles (module docstring).

    A view over ``inner``: it shares its activation (the caller enters and closes ``inner``).
    ``limit`` None: no tiling; frames beyond ``inner``'s sizes are refused (:class:`BatchError`).
    """

    def __init__(self, inner: Runner, limit: Size | None, tile_batch: int = 1) -> None:
        super().__init__(None, inner.device)
        self.inner = inner
        self.backend = inner.backend  # type: ignore[misc] - per instance: the inner's
        self.limit = limit
        self.tile_batch = max(1, tile_batch)
        self.precision = inner.precision
        self.image_size = inner.image_size
        self.test_norm = inner.test_norm
        self.frames_in_flight = inner.frames_in_flight
        self.model = inner.model
        self.path = inner.path
        inner_range = inner.size_range
        self.sizes = (
            inner_range if limit is None else SizeRange(inner_range.min, None, inner_range.stride)
        )
        self.is_active = inner.is_active

    def _activate(self) -> None:
        if not self.inner.is_active:
            self.inner.activate()

    def _fits_whole(self, size: Size) -> bool:
        return self.inner.size_range.accepts(size) and (
            self.limit is None or fits(size, self.limit)
        )

    def plan(self, size: Size) -> TilePlan | None:
        """None when a frame of ``size`` runs whole, else its tiles."""
        if self._fits_whole(size):
            return None
        if self.limit is None:
            raise BatchError(
                f"{self.describe()}: {self.inner.size_range.refusal(size)} and tiling is off "
                "(--max-tile off)"
            )
        return plan_tiles(size, self.limit)

    def _tiled(
        self,
        images: np.ndarray,
        channels_last: bool,
        submit: Callable[[np.ndarray], Pending],
    ) -> Pending:
        """Cut every image into tiles, submit them ``tile_batch`` at a time, and return the
        Pending of the blended images."""
        size = images.shape[1:3] if channels_last else images.shape[2:4]
        plan = self.plan((int(size[0]), int(size[1])))
        if plan is None:
            return submit(images)
        tiles = [t for img in images for t in cut(img, plan, channels_last)]
        pendings = [
            submit(np.ascontiguousarray(np.stack(tiles[i : i + self.tile_batch])))
            for i in range(0, len(tiles), self.tile_batch)
        ]

        def collect() -> np.ndarray:
            outs = [o for p in pendings for o in p.result()]
            k = len(plan)
            return np.stack(
                [blend(outs[i : i + k], plan, channels_last) for i in range(0, len(outs), k)]
            )

        return Pending(collect)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._check_active()
        check_images(batch, self.size_range, np.float32, channels_last=False)

        def now(x: np.ndarray) -> Pending:
            y = self.inner.infer(x)
            return Pending(lambda: y)

        return self._tiled(batch, False, now).result()

    def submit_frames(self, frames: np.ndarray) -> Pending:
        self._check_active()
        check_images(frames, self.size_range, np.uint8, channels_last=True)
        return self._tiled(frames, True, self.inner.submit_frames)

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - infer() above
        return self.inner.infer(batch)

    def warmup(self, batch: int | None = None, size: Size | None = None) -> float:
        """The inner runner's warm-up; at ``size``, a black frame of that size through the
        tiling view (the shapes it will run: the frame whole, or its tiles)."""
        return self.inner.warmup(batch) if size is None else super().warmup(batch, size)

    def device_step(self, batch: np.ndarray) -> DeviceStep | None:
        return self.inner.device_step(batch)

    def frames_device_step(self, frames: np.ndarray) -> DeviceStep | None:
        return self.inner.frames_device_step(frames)

    def describe(self) -> str:
        tiles = "no tiling" if self.limit is None else f"tiles up to {format_size(self.limit)}"
        return f"{self.inner.describe()}, {tiles}"
