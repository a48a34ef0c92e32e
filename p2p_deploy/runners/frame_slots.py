"""Double-buffered pinned host memory for GPU runners' batches of frames.

A GPU runner's :meth:`~p2p_deploy.runners.base.Runner.submit_frames` copies the host's uint8
frames into a pinned (page-locked) slot, queues the upload, the model and the download into
the slot's pinned output on its one CUDA stream, records an event and returns. With two slots
the host fills batch k+1 (stacking, the copy into pinned memory) while the device still works
on batch k; the stream's order keeps the device buffers safe to reuse. A slot is reused only
after its previous output was copied out (:meth:`FrameSlots.take` fetches it if the caller
has not), so a pending result is never overwritten.

Pinned buffers are flat bytes, grown when a larger batch (or frame size) arrives and viewed
as the shape of each call. Nothing here imports torch or pycuda: the memory layer
(:mod:`p2p_deploy.runners.trt_memory`) allocates and records events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from p2p_deploy.runners.base import Pending


class Slot:
    """One pinned input buffer, one pinned output buffer, and the batch pending in them."""

    def __init__(self, alloc: Callable[[int], np.ndarray]) -> None:
        self._alloc = alloc
        self._in = alloc(0)
        self._out = alloc(0)
        self.pending: Pending | None = None

    def host_in(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A pinned array of ``shape`` / ``dtype`` for the input (grown when too small)."""
        self._in = self._fit(self._in, shape, dtype)
        return self._view(self._in, shape, dtype)

    def host_out(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A pinned array of ``shape`` / ``dtype`` for the output (grown when too small)."""
        self._out = self._fit(self._out, shape, dtype)
        return self._view(self._out, shape, dtype)

    def _fit(self, buf: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return buf if buf.nbytes >= need else self._alloc(need)

    @staticmethod
    def _view(buf: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return buf[:need].view(dtype).reshape(shape)


class FrameSlots:
    """``count`` slots used in turn (see the module docstring).

    Args:
        alloc: ``nbytes -> pinned uint8 numpy array`` (``CudaMemory.host_empty((n,), uint8)``).
        count: slots, i.e. batches that may be in flight at once.
    """

    def __init__(self, alloc: Callable[[int], np.ndarray], count: int = 2) -> None:
        self.slots = [Slot(alloc) for _ in range(count)]
        self._next = 0

    def take(self) -> Slot:
        """The next slot, its previous batch's output copied out first if still pending."""
        slot = self.slots[self._next]
        self._next = (self._next + 1) % len(self.slots)
        if slot.pending is not None and not slot.pending.fetched:
            slot.pending.result()
        slot.pending = None
        return slot

    def pending(self, slot: Slot, wait: Callable[[], None], out: np.ndarray) -> Pending:
        """The Pending of a batch queued in ``slot``: ``wait()`` (the event's synchronize),
        then a copy of ``out`` (the slot's pinned output view), so the slot can be reused."""

        def fetch() -> np.ndarray:
            wait()
            return out.copy()

        slot.pending = Pending(fetch)
        return slot.pending
