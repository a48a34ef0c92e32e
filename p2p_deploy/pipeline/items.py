"""What flows through the pipeline's queues, in input order.

For each job the reader emits either ``Failed`` (could not even start) or ``Start``, its
``Frame`` items, then ``End``. The batcher fills ``Frame.output``; the writer consumes all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p2p_deploy.media.files import Job
from p2p_deploy.media.resize import Geometry


@dataclass
class Start:
    """A job opened; ``fps`` for videos (None for images)."""

    job: Job
    fps: float | None = None


@dataclass
class Frame:
    """One frame: the (S, S, 3) uint8 BGR model input, how it was fitted, and, for
    side-by-side output only, the original (H, W, 3) frame. ``output`` is set by the batcher."""

    job: Job
    index: int
    model_input: np.ndarray
    geometry: Geometry
    source: np.ndarray | None = None
    output: np.ndarray | None = None


@dataclass
class End:
    """The job's last frame has been sent."""

    job: Job
    frames: int


@dataclass
class Failed:
    """The job failed before (or instead of) producing frames; ``reason`` is one sentence."""

    job: Job
    reason: str


@dataclass
class Crash:
    """An unexpected exception in a worker thread, handed to the main thread to re-raise."""

    error: BaseException


DONE = object()  # end of stream
