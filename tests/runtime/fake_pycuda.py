"""A stand-in for ``pycuda.driver`` on machines without pycuda or a GPU: host memory for device
memory, synchronous copies, and pycuda's one rule that matters to the memory layer: an
allocation, stream or event made while no context is pushed on the calling thread raises, as
pycuda's ``explicit_context_dependent::acquire_context`` does ("no currently active
context?"). Contexts are a per-thread stack, as in pycuda."""

from __future__ import annotations

import threading
import types

import numpy as np

_local = threading.local()


class LogicError(RuntimeError):
    pass


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def _need_context(what: str) -> None:
    if not _stack():
        raise LogicError(f"{what} failed: explicit_context_dependent: no currently active context?")


class _Context:
    def push(self) -> None:
        _stack().append(self)


class Context:
    @staticmethod
    def pop() -> None:
        if not _stack():
            raise LogicError("context::pop: cannot pop non-current context")
        _stack().pop()


class Device:
    def __init__(self, index: int) -> None:
        self.index = index

    def retain_primary_context(self) -> _Context:
        return _Context()


class Stream:
    def __init__(self) -> None:
        _need_context("Stream")
        self.handle = 1

    def synchronize(self) -> None:
        pass


class Event:
    def __init__(self) -> None:
        _need_context("Event")

    def record(self, stream: Stream) -> Event:
        return self

    def synchronize(self) -> Event:
        return self

    def query(self) -> bool:
        return True


class _DeviceAllocation:
    _next = 0x1000

    def __init__(self, nbytes: int) -> None:
        _need_context("mem_alloc")
        self.data = np.zeros(nbytes, np.uint8)
        self.ptr = _DeviceAllocation._next
        _DeviceAllocation._next += nbytes + 256

    def __int__(self) -> int:
        return self.ptr


def init() -> None:
    pass


def mem_alloc(nbytes: int) -> _DeviceAllocation:
    return _DeviceAllocation(nbytes)


def pagelocked_empty(shape, dtype) -> np.ndarray:
    _need_context("pagelocked_empty")
    return np.empty(shape, dtype)


def memcpy_htod_async(dst: _DeviceAllocation, src: np.ndarray, stream: Stream) -> None:
    _need_context("memcpy_htod_async")
    raw = np.ascontiguousarray(src).reshape(-1).view(np.uint8)
    dst.data[: raw.size] = raw


def memcpy_dtoh_async(dst: np.ndarray, src: _DeviceAllocation, stream: Stream) -> None:
    _need_context("memcpy_dtoh_async")
    raw = dst.reshape(-1).view(np.uint8)
    raw[:] = src.data[: raw.size]


def install(monkeypatch) -> types.ModuleType:
    """Make ``import pycuda.driver`` give this module (for the test's duration)."""
    import sys

    pkg = types.ModuleType("pycuda")
    driver = sys.modules[__name__]
    pkg.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return driver
