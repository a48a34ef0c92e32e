"""Device buffers for the TensorRT runner: one small interface, two implementations.

* :class:`TorchCudaMemory`: torch CUDA tensors (when torch with CUDA is installed): TensorRT
  takes their ``data_ptr()``; pinned host tensors; copies on one ``torch.cuda.Stream``.
* :class:`PycudaMemory`: pycuda on the device's *primary* context (the one the CUDA runtime,
  TensorRT and PyTorch use; ``pycuda.autoinit`` would make a second context that fights them),
  retained as ``pycuda.autoprimaryctx`` does it but pushed and popped around each call
  (:meth:`CudaMemory.current`) instead of made current once on the importing thread, so a
  runner works from any thread; ``mem_alloc`` + ``pagelocked_empty`` + async copies. Every
  method pushes the context itself: pycuda's allocations, streams and events are
  "context dependent" and raise "no currently active context?" without one (src/cpp/cuda.hpp,
  ``explicit_context_dependent::acquire_context``), so a caller such as
  :class:`~p2p_deploy.runners.frame_slots.FrameSlots`, which grows its pinned buffers when a
  larger batch arrives, needs no ``with mem.current()`` of its own.

Both give: pinned host arrays (numpy views), device buffers with an integer ``ptr``, async
host<->device copies on the one stream, and ``synchronize``. A box with only tensorrt, pycuda
and numpy runs engines without torch. Nothing here imports torch or pycuda at module level.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from p2p_deploy.deps import available, require
from p2p_deploy.errors import MissingDependency


class DeviceBuffer:
    """A device allocation: ``ptr`` (int address), ``nbytes``; ``handle`` keeps it alive."""

    def __init__(self, ptr: int, nbytes: int, handle: Any) -> None:
        self.ptr = ptr
        self.nbytes = nbytes
        self.handle = handle


class CudaMemory(abc.ABC):
    """One CUDA stream plus allocation and copies on it."""

    name: str = "base"

    @abc.abstractmethod
    def current(self) -> contextlib.AbstractContextManager:
        """Make this memory's device (and CUDA context) current for the ``with`` block:
        TensorRT deserializes onto, allocates on and runs on the current device/context."""

    @property
    @abc.abstractmethod
    def stream_handle(self) -> int:
        """The raw ``cudaStream_t`` as an int (what ``execute_async_v3`` takes)."""

    @abc.abstractmethod
    def device_empty(self, nbytes: int) -> DeviceBuffer: ...

    @abc.abstractmethod
    def host_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A page-locked host array (numpy view)."""

    @abc.abstractmethod
    def to_device(self, dst: DeviceBuffer, src: np.ndarray) -> None:
        """Async copy of pinned ``src`` into ``dst`` on the stream."""

    @abc.abstractmethod
    def to_host(self, dst: np.ndarray, src: DeviceBuffer) -> None:
        """Async copy of ``src`` into pinned ``dst`` on the stream."""

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def record_event(self) -> Any:
        """An event recorded on the stream now: its ``synchronize()`` waits for everything
        queued on the stream before it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the stream (allocations die with their handles)."""


class TorchCudaMemory(CudaMemory):
    """Buffers as torch CUDA tensors (uint8 storage of the right byte size)."""

    name = "torch"

    def __init__(self, device: int = 0) -> None:
        import torch

        if not torch.cuda.is_available():
            raise MissingDependency("torch is installed without CUDA (or sees no GPU).")
        self._torch = torch
        self.device = torch.device("cuda", device)
        self.stream = torch.cuda.Stream(device=self.device)

    def current(self) -> contextlib.AbstractContextManager:
        return self._torch.cuda.device(self.device)

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def device_empty(self, nbytes: int) -> DeviceBuffer:
        t = self._torch.empty(nbytes, dtype=self._torch.uint8, device=self.device)
        return DeviceBuffer(int(t.data_ptr()), nbytes, t)

    def host_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        t = self._torch.empty(nbytes, dtype=self._torch.uint8, pin_memory=True)
        arr = t.numpy().view(dtype).reshape(shape)
        # keep the pinned tensor alive as long as the array: numpy's base chain holds t.numpy()
        return arr

    def to_device(self, dst: DeviceBuffer, src: np.ndarray) -> None:
        host = self._torch.from_numpy(np.ascontiguousarray(src).reshape(-1).view(np.uint8))
        with self._torch.cuda.stream(self.stream):
            dst.handle[: host.numel()].copy_(host, non_blocking=True)

    def to_host(self, dst: np.ndarray, src: DeviceBuffer) -> None:
        host = self._torch.from_numpy(dst.reshape(-1).view(np.uint8))
        with self._torch.cuda.stream(self.stream):
            host.copy_(src.handle[: host.numel()], non_blocking=True)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def record_event(self) -> Any:
        event = self._torch.cuda.Event()
        event.record(self.stream)
        return event


class PycudaMemory(CudaMemory):
    """Buffers through pycuda on the device's primary context."""

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        self._cuda = require("pycuda.driver")
        self._cuda.init()
        self.device = device
        # Retained, not pushed for good: pycuda/autoprimaryctx.py retains the primary context
        # and pushes it once on the importing thread; a CUDA context is current per thread, so
        # here it is pushed around each call instead (see current()).
        self._ctx = self._cuda.Device(device).retain_primary_context()
        with self.current():
            self.stream = self._cuda.Stream()

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        self._ctx.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    # Each method pushes the context (nested pushes are fine: pycuda keeps a per-thread stack).

    def device_empty(self, nbytes: int) -> DeviceBuffer:
        with self.current():
            alloc = self._cuda.mem_alloc(max(1, nbytes))
        return DeviceBuffer(int(alloc), nbytes, alloc)

    def host_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        with self.current():
            return self._cuda.pagelocked_empty(shape, dtype)

    def to_device(self, dst: DeviceBuffer, src: np.ndarray) -> None:
        with self.current():
            self._cuda.memcpy_htod_async(dst.handle, np.ascontiguousarray(src), self.stream)

    def to_host(self, dst: np.ndarray, src: DeviceBuffer) -> None:
        with self.current():
            self._cuda.memcpy_dtoh_async(dst, src.handle, self.stream)

    def synchronize(self) -> None:
        with self.current():
            self.stream.synchronize()

    def record_event(self) -> Any:
        # pycuda.driver.Event().record(stream) -> cuEventRecord on that stream; the event's
        # synchronize() (cuEventSynchronize) is wrapped to run with the context current too.
        with self.current():
            event = self._cuda.Event()
            event.record(self.stream)
        return _ContextEvent(event, self)

    def close(self) -> None:
        # The stream goes while its context is current; the retained primary context is
        # released when its last reference goes (pycuda's Context destructor).
        with self.current():
            self.stream = None


class _ContextEvent:
    """A pycuda event whose ``synchronize()`` pushes its memory's context first (the same
    interface as ``torch.cuda.Event``'s, so callers wait on either alike)."""

    def __init__(self, event: Any, mem: PycudaMemory) -> None:
        self.event = event
        self._mem = mem

    def synchronize(self) -> None:
        with self._mem.current():
            self.event.synchronize()

    def query(self) -> bool:
        with self._mem.current():
            return bool(self.event.query())


def torch_cuda_available() -> bool:
    if not available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def open_memory(prefer: str = "auto", device: int = 0) -> CudaMemory:
    """``torch`` when torch has CUDA, else ``pycuda``; ``prefer`` forces one.

    Raises:
        MissingDependency: neither is usable (names the extra to install).
    """
    if prefer in ("auto", "torch") and torch_cuda_available():
        return TorchCudaMemory(device)
    if prefer == "torch":
        raise MissingDependency("torch with CUDA is not available for TensorRT buffers.")
    return PycudaMemory(device)
