"""The options of one run, resolved once (the CLI builds this from its flags)."""

from __future__ import annotations

from dataclasses import dataclass

from p2p_deploy.media.images import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class RunOptions:
    """batch: frames per runner call; resize: stretch|pad|crop; keep_size: outputs at the
    input's size (else model size); side_by_side: input left, output right; codec: FourCC of
    output videos; overwrite: redo existing outputs; max_pixels: refuse larger images;
    queue_frames: items the reader may run ahead (memory bound: frames, plus one slot for each
    file's Start/End/Failed marker, so at most this many frames; default max(4, 2 batches))."""

    batch: int = 1
    resize: str = "stretch"
    keep_size: bool = True
    side_by_side: bool = False
    codec: str = "mp4v"
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    queue_frames: int | None = None

    @property
    def in_queue_size(self) -> int:
        return self.queue_frames or max(4, 2 * self.batch)
