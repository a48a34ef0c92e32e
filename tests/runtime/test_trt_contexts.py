"""The TensorRT runner's execution contexts and their activation memory, with TensorRT and CUDA
stood in for (the real runs are the ``trt`` tests): every context is created USER_MANAGED on
one shared block of ``device_memory_size_v2`` bytes, and graph mode makes no plain context."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from p2p_deploy.runners import tensorrt_runner
from p2p_deploy.runners.tensorrt_runner import (
    TensorRTRunner,
    context_memory_size,
    user_managed_context,
)
from p2p_deploy.runners.trt_memory import CudaMemory, DeviceBuffer

USER_MANAGED = "ExecutionContextAllocationStrategy.USER_MANAGED"
ACTIVATIONS = 12_345


class FakeMemory(CudaMemory):
    """Host-side stand-in: each allocation gets a fresh fake address."""

    name = "fake"

    def __init__(self) -> None:
        self._next = itertools.count(0x1000, 0x1000)
        self.allocations: list[DeviceBuffer] = []

    def current(self):
        return contextlib.nullcontext()

    @property
    def stream_handle(self) -> int:
        return 7

    def device_empty(self, nbytes: int) -> DeviceBuffer:
        buf = DeviceBuffer(next(self._next), nbytes, None)
        self.allocations.append(buf)
        return buf

    def host_empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def to_device(self, dst, src) -> None: ...

    def to_host(self, dst, src) -> None: ...

    def synchronize(self) -> None: ...

    def record_event(self):
        return SimpleNamespace(synchronize=lambda: None)


class FakeContext:
    def __init__(self, strategy) -> None:
        self.strategy = strategy
        self.memory: tuple[int, int] | None = None
        self.shape: tuple[int, ...] = (-1, 3, 32, 32)
        self.nvtx_verbosity = "detailed"

    def set_device_memory(self, ptr: int, size: int) -> None:
        self.memory = (ptr, size)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        return True

    def get_tensor_shape(self, name: str):
        return self.shape

    def set_input_shape(self, name: str, shape) -> bool:
        self.shape = tuple(shape)
        return True


class FakeEngine:
    num_io_tensors = 2
    device_memory_size_v2 = ACTIVATIONS

    def __init__(self) -> None:
        self.contexts: list[FakeContext] = []

    def get_tensor_name(self, i: int) -> str:
        return ("input", "output")[i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name == "input" else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return "FLOAT"

    def get_tensor_shape(self, name: str):
        return (-1, 3, 32, 32)

    def get_tensor_profile_shape(self, name: str, profile: int):
        return [(b, 3, 32, 32) for b in (1, 4, 16)]

    def create_execution_context(self, strategy=None) -> FakeContext:
        ctx = FakeContext(strategy)
        self.contexts.append(ctx)
        return ctx


def _fake_trt(engine: FakeEngine) -> SimpleNamespace:
    return SimpleNamespace(
        __version__="10.13.3.9",
        Logger=type("Logger", (), {"ERROR": 3, "__init__": lambda self, sev: None}),
        init_libnvinfer_plugins=lambda logger, ns: True,
        Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda data: engine),
        TensorIOMode=SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        nptype=lambda dtype: np.float32,
        ExecutionContextAllocationStrategy=SimpleNamespace(USER_MANAGED=USER_MANAGED),
        ProfilingVerbosity=SimpleNamespace(LAYER_NAMES_ONLY="names"),
    )


@pytest.fixture
def fake_plan(tiny_onnx_fp16: Path, tmp_path: Path) -> Path:
    """A ``model.plan`` (bytes that are no engine) with a real TensorRT card."""
    from p2p_deploy.export.tensorrt_build import BatchProfile, engine_card
    from p2p_deploy.models.card import read_export_card

    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not an engine")
    engine_card(
        read_export_card(tiny_onnx_fp16),
        precision="fp16",
        profile=BatchProfile(1, 4, 16),
        trt_version="10.13.3.9",
        gpu_name="NVIDIA H200",
        compute_capability="9.0",
    ).write(plan)
    return plan


def _loaded(plan: Path, monkeypatch: pytest.MonkeyPatch, graphs: bool):
    engine = FakeEngine()
    trt = _fake_trt(engine)
    monkeypatch.setattr(tensorrt_runner, "require", lambda name: trt)
    monkeypatch.setattr(tensorrt_runner, "_LOGGER", None)  # the process logger stays real
    runner = TensorRTRunner(plan, cuda_graphs=graphs)
    runner.mem = FakeMemory()
    runner._load(trt)  # what _activate does once the GPU and the buffers are there
    return runner, engine


def test_graph_mode_contexts_share_one_user_managed_block(fake_plan, monkeypatch) -> None:
    runner, engine = _loaded(fake_plan, monkeypatch, graphs=True)
    assert runner._context is None and engine.contexts == []  # no plain context in graph mode
    block = runner._context_memory
    assert block.nbytes == ACTIVATIONS
    s = runner.image_size
    for n in (4, 2, 16, 1):  # one context per captured shape, as ContextPerShape makes
        runner._graph_context((n, s, s))
    assert len(engine.contexts) == 4
    assert {c.strategy for c in engine.contexts} == {USER_MANAGED}
    assert {c.memory for c in engine.contexts} == {(block.ptr, ACTIVATIONS)}
    assert [c.shape[0] for c in engine.contexts] == [4, 2, 16, 1]
    assert {c.nvtx_verbosity for c in engine.contexts} == {"names"}
    # buffers: input, output, the one activation block; nothing per context
    assert len(runner.mem.allocations) == 3
    runner._close()
    assert runner._context_memory is None and runner.mem is None


def test_plain_mode_has_one_user_managed_context(fake_plan, monkeypatch) -> None:
    runner, engine = _loaded(fake_plan, monkeypatch, graphs=False)
    assert [c.strategy for c in engine.contexts] == [USER_MANAGED]
    assert runner._context is engine.contexts[0]
    assert runner._context.memory == (runner._context_memory.ptr, ACTIVATIONS)


def test_memory_size_and_context_on_tensorrt_10_0() -> None:
    """TensorRT 10.0 has neither ``device_memory_size_v2`` nor ``set_device_memory``: the
    v1 names, as Polygraphy's TrtRunner falls back to them."""
    old = SimpleNamespace(device_memory_size=99)
    assert context_memory_size(old) == 99
    assert context_memory_size(SimpleNamespace(device_memory_size_v2=5, device_memory_size=9)) == 5
    ctx = SimpleNamespace(device_memory=None)
    trt = SimpleNamespace(ExecutionContextAllocationStrategy=SimpleNamespace(USER_MANAGED="u"))
    made = []
    engine = SimpleNamespace(create_execution_context=lambda s: made.append(s) or ctx)
    assert user_managed_context(trt, engine, DeviceBuffer(0x2000, 99, None)) is ctx
    assert made == ["u"] and ctx.device_memory == 0x2000
    none = SimpleNamespace(create_execution_context=lambda s: None)
    with pytest.raises(RuntimeError, match="could not create an execution context"):
        user_managed_context(trt, none, DeviceBuffer(0x2000, 99, None))
