"""The options of one run, resolved once (the CLI builds this from its flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from p2p_deploy.media.images import DEFAULT_MAX_PIXELS


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RunOptions:
    """How one run reads, translates and writes.

    batch: frames per runner call; resize: stretch|pad|crop|native; keep_size: outputs at the
    input's size (else model size); side_by_side: input left, output right; codec: FourCC of
    output videos; overwrite: redo existing outputs; max_pixels: refuse larger images.
    workers: threads of the one pool that decodes and encodes (None: the usable cores).
    max_tile: ``native`` only: the largest tile (``auto``, ``off``, ``HxW`` or ``S``; see
    :mod:`p2p_deploy.runners.tiling`).

    Memory is bounded by what may be in flight at once (see :attr:`frames_in_flight`): the jobs
    decoded ahead of the batcher (:attr:`window`, one frame per image), the videos open for
    decoding (:attr:`open_videos`, each holding up to :attr:`video_queue` frames), the batch
    being gathered and two batches in the runner, the translated images waiting for an encoder
    (:attr:`encode_queue`) and the frames waiting for the videos' writers
    (:attr:`video_writers` queues of :attr:`video_queue`).
    """

    batch: int = 1
    resize: str = "stretch"
    keep_size: bool = True
    side_by_side: bool = False
    codec: str = "mp4v"
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int | None = None
    max_tile: str = "auto"

    def __post_init__(self) -> None:
        if self.workers is None:
            object.__setattr__(self, "workers", usable_cores())
        if self.workers < 1 or self.batch < 1:
            raise ValueError("workers and batch must be at least 1")

    @property
    def window(self) -> int:
        """Jobs decoded ahead of the batcher: enough to keep every worker busy while one
        batch fills."""
        return 2 * self.workers + self.batch

    @property
    def open_videos(self) -> int:
        """Videos decoded at once: the one being translated and the next."""
        return 2

    @property
    def video_queue(self) -> int:
        """Frames a video's decoder (or writer) may run ahead of its consumer."""
        return max(8, 2 * self.batch)

    @property
    def encode_queue(self) -> int:
        """Translated images waiting for a worker thread to encode them."""
        return 2 * self.workers + self.batch

    @property
    def video_writers(self) -> int:
        """Videos being written at once (each holding up to :attr:`video_queue` frames): one
        per worker thread, and the next video's."""
        return self.workers + 1

    @property
    def frames_in_flight(self) -> int:
        """The most frames held in memory at once (each at most the size of its input)."""
        return (
            self.window
            + self.open_videos * self.video_queue
            + 3 * self.batch
            + self.encode_queue
            + self.video_writers * self.video_queue
        )
