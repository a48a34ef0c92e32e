"""The interface every backend implements, in the spirit of Polygraphy's runners.

A runner is built from a path, used as a context manager (``__enter__`` loads the model and
allocates buffers; ``__exit__`` frees them), and translates batches with ``infer``. Every backend
has the same contract, checked by the conformance test against eager torch.
"""

from __future__ import annotations

import abc
from types import TracebackType

import numpy as np


class Runner(abc.ABC):
    """Base class of all runners.

    Contract of :meth:`infer`:
        input:  (N, 3, S, S) float32 numpy, RGB in [-1, 1], S = :attr:`image_size`, any N >= 1
                (a runner splits batches larger than it supports).
        output: (N, 3, S, S) float32 numpy, RGB in [-1, 1], row i computed from input row i only.

    Attributes set by subclasses:
        backend: ``torch``, ``onnxruntime`` or ``tensorrt``.
        precision: ``fp32`` or ``fp16``, as verified from the model, not assumed.
        device: ``cpu``, ``cuda:0``, ...
        image_size: S.
        max_batch: the largest batch one call of the model takes (None: unbounded).
    """

    backend: str = "base"
    precision: str = "fp32"
    device: str = "cpu"
    image_size: int = 256
    max_batch: int | None = None

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def activate(self) -> None:  # noqa: B027 - optional hook, default: nothing to load
        """Load the model and allocate buffers (called by ``__enter__``)."""

    def close(self) -> None:  # noqa: B027 - optional hook, default: nothing to free
        """Free what :meth:`activate` allocated (called by ``__exit__``)."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Translate a batch; see the class docstring for the contract."""

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """Translate OpenCV frames: (N, S, S, 3) uint8 BGR -> (N, S, S, 3) uint8 BGR.

        The default converts on the CPU with :mod:`p2p_deploy.imaging`; runners whose model
        lives on a GPU override it to convert there (one upload of uint8, one download).
        """
        from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8

        return tensor_to_bgr8(self.infer(bgr8_to_tensor(frames)))

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``onnxruntime fp32 on cpu``."""
        return f"{self.backend} {self.precision} on {self.device}"


def batch_slices(n: int, max_batch: int | None) -> list[slice]:
    """Slices that cut ``n`` rows into consecutive chunks of at most ``max_batch`` rows."""
    if not max_batch or n <= max_batch:
        return [slice(0, n)]
    return [slice(i, min(i + max_batch, n)) for i in range(0, n, max_batch)]
