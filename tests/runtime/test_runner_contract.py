"""The runner contract owned by :class:`p2p_deploy.runners.base.Runner`: activation, dtype and
shape checks, splitting into ``max_batch`` chunks and padding up to ``min_batch``, for a tiny
concrete subclass (every chunk it sees is recorded) and for the real torch / ONNX Runtime
runners (the same errors, the same split and pad results)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from p2p_deploy.errors import P2PError
from p2p_deploy.runners.base import BatchError, Runner, batch_slices, pad_rows
from p2p_deploy.runners.factory import open_runner


class Recorder(Runner):
    """x -> -x, recording the size of every chunk the base class hands it."""

    backend = "recorder"

    def __init__(self, min_batch: int = 1, max_batch: int | None = None) -> None:
        super().__init__(None, "cpu")
        self.image_size = 8
        self.min_batch = min_batch
        self.max_batch = max_batch
        self.chunks: list[int] = []
        self.closed = 0

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        assert self.min_batch <= batch.shape[0] <= (self.max_batch or batch.shape[0])
        self.chunks.append(batch.shape[0])
        return -batch

    def _close(self) -> None:
        self.closed += 1


class FailingLoad(Recorder):
    def _activate(self) -> None:
        raise P2PError("model.bin: damaged.")


def _batch(n: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(n).uniform(-1, 1, (n, 3, size, size)).astype(np.float32)


def _frames(n: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_helpers() -> None:
    assert batch_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert batch_slices(5, None) == [slice(0, 5)] == batch_slices(5, 8)
    x = _batch(1)
    padded = pad_rows(x, 3)
    assert padded.shape == (3, 3, 8, 8) and np.array_equal(padded[0], x[0])
    assert not padded[1:].any() and pad_rows(x, 1) is x


def test_not_activated_is_an_error() -> None:
    r = Recorder()
    assert not r.is_active
    with pytest.raises(RuntimeError, match="not activated"):
        r.infer(_batch(1))
    with pytest.raises(RuntimeError, match="not activated"):
        r.infer_frames(_frames(1))
    with r:
        assert r.is_active
        r.infer(_batch(1))
    assert not r.is_active and r.closed == 1
    with pytest.raises(RuntimeError, match="not activated"):
        r.infer(_batch(1))
    r.close()  # closing twice is harmless
    assert r.describe() == "recorder fp32 on cpu (test-norm unknown)"


def test_failed_activation_frees_what_it_made() -> None:
    r = FailingLoad()
    with pytest.raises(P2PError, match="damaged"):
        with r:
            pass  # pragma: no cover - never entered
    assert r.closed == 1 and not r.is_active


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((2, 3, 8, 8), np.float64), "dtype float64"),
        (np.zeros((2, 3, 8, 8), np.float16), "dtype float16"),
        (np.zeros((3, 8, 8), np.float32), r"shape \(3, 8, 8\)"),
        (np.zeros((2, 3, 16, 16), np.float32), r"shape \(2, 3, 16, 16\)"),
        (np.zeros((2, 8, 8, 3), np.float32), r"shape \(2, 8, 8, 3\)"),
        (np.zeros((0, 3, 8, 8), np.float32), r"shape \(0, 3, 8, 8\)"),
        ([[0.0]], "numpy array, got list"),
    ],
)
def test_wrong_batch_is_refused(bad, match: str) -> None:
    with Recorder() as r, pytest.raises(BatchError, match=match) as info:
        r.infer(bad)
    assert isinstance(info.value, P2PError) and isinstance(info.value, ValueError)
    assert r.chunks == []


def test_wrong_frames_are_refused() -> None:
    with Recorder() as r:
        with pytest.raises(BatchError, match="dtype float32"):
            r.infer_frames(np.zeros((1, 8, 8, 3), np.float32))
        with pytest.raises(BatchError, match=r"shape \(1, 3, 8, 8\)"):
            r.infer_frames(np.zeros((1, 3, 8, 8), np.uint8))


@pytest.mark.parametrize(
    ("min_batch", "max_batch", "n", "chunks"),
    [
        (1, None, 5, [5]),
        (1, 2, 5, [2, 2, 1]),  # split
        (4, 4, 5, [4, 4]),  # static batch: the last chunk of 1 padded to 4
        (2, 8, 1, [2]),  # below the profile minimum: padded
        (2, 3, 7, [3, 3, 2]),  # split, last chunk 1 padded to 2
    ],
)
def test_split_and_pad(min_batch: int, max_batch: int | None, n: int, chunks: list[int]) -> None:
    x = _batch(n)
    with Recorder(min_batch, max_batch) as r:
        y = r.infer(x)
        assert r.chunks == chunks
        assert y.shape == x.shape and y.dtype == np.float32 and np.array_equal(y, -x)
        r.chunks.clear()
        f = _frames(n)
        out = r.infer_frames(f)
        assert r.chunks == chunks and out.shape == f.shape and out.dtype == np.uint8
        # negation in [-1, 1] is 255 - v in uint8, within 1 LSB of the shared conversion
        assert np.abs(out.astype(int) - (255 - f.astype(int))).max() <= 1


def test_device_step_is_optional() -> None:
    with Recorder() as r:
        assert r.device_step(_batch(1)) is None


# -- the real runners keep the same contract ---------------------------------------------


@pytest.fixture(
    params=[
        "torch",
        "onnxruntime",
        pytest.param(
            "openvino",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
            ),
        ),
    ]
)
def real_model(request: pytest.FixtureRequest) -> tuple[Path, str]:
    name = "tiny_checkpoint" if request.param == "torch" else "tiny_onnx_fp32"
    return request.getfixturevalue(name), request.param


def test_real_runner_contract(real_model: tuple[Path, str]) -> None:
    path, backend = real_model
    runner = open_runner(path, backend, device="cpu")
    assert runner.backend == backend
    assert runner.describe().endswith(")")  # no getattr guard needed before activation
    with pytest.raises(RuntimeError, match="not activated"):
        runner.infer(_batch(1, 32))
    with runner:
        with pytest.raises(BatchError, match="dtype float64"):
            runner.infer(_batch(1, 32).astype(np.float64))
        with pytest.raises(BatchError, match=r"shape \(1, 3, 16, 16\)"):
            runner.infer(_batch(1, 16))
        with pytest.raises(BatchError, match="uint8"):
            runner.infer_frames(_frames(1, 32).astype(np.int32))
        assert runner.device_step(_batch(1, 32)) is None  # CPU: no device-side step
    runner.close()
    assert not runner.is_active


def _static_batch_copy(src: Path, dst: Path, batch: int) -> Path:
    """``src`` ONNX with its batch axis fixed to ``batch`` (and its sidecar beside it)."""
    model = onnx.load(str(src))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(dst))
    dst.with_name(dst.name + ".json").write_text(src.with_name(src.name + ".json").read_text())
    return dst


def test_onnxruntime_static_batch_is_split_and_padded(tiny_onnx_fp32: Path, tmp_path: Path):
    static = _static_batch_copy(tiny_onnx_fp32, tmp_path / "static.onnx", 2)
    x = _batch(5, 32)
    with open_runner(tiny_onnx_fp32, device="cpu") as dynamic:
        ref = dynamic.infer(x)
    with open_runner(static, device="cpu") as runner:
        assert (runner.min_batch, runner.max_batch) == (2, 2)
        out = runner.infer(x)  # chunks 2, 2, 1 (padded to 2)
        assert out.shape == x.shape
        assert np.abs(out - ref).max() < 1e-5
        assert np.abs(runner.infer(x[:1]) - ref[:1]).max() < 1e-5  # padded single image


def test_torch_runner_split_matches_whole(tiny_checkpoint: Path) -> None:
    x = _batch(5, 32)
    with open_runner(tiny_checkpoint, device="cpu") as whole:
        ref = whole.infer(x)
    with open_runner(tiny_checkpoint, device="cpu", max_batch=2) as split:
        assert np.abs(split.infer(x) - ref).max() < 1e-5
        f = _frames(5, 32)
        assert np.array_equal(split.infer_frames(f), whole_frames(tiny_checkpoint, f))


def whole_frames(checkpoint: Path, frames: np.ndarray) -> np.ndarray:
    with open_runner(checkpoint, device="cpu") as r:
        return r.infer_frames(frames)


def test_cuda_graph_bookkeeping_one_context_per_batch_size() -> None:
    """TensorRT runner: a captured graph belongs to the context (and shapes) it was captured
    on, so each batch size gets its own context, created and captured once."""
    from p2p_deploy.runners.tensorrt_runner import ContextPerShape

    made: list[int] = []
    captured: list[tuple[str, int]] = []

    def create(n: int) -> str:
        made.append(n)
        return f"context-{n}-{len(made)}"

    def capture(ctx: str, n: int) -> tuple[str, int]:
        captured.append((ctx, n))
        return (ctx, n)

    slots = ContextPerShape(create, capture)
    # the batch sizes of a 10-frame video at batch 4: 4, 4, then the last, smaller chunk 2
    graphs = [slots.graph_for(n) for n in (4, 4, 2, 4, 2)]
    assert made == [4, 2] and captured == [("context-4-1", 4), ("context-2-2", 2)]
    assert graphs[0] is graphs[1] is graphs[3] and graphs[2] is graphs[4]
    assert graphs[0][0] != graphs[2][0]  # never one context replayed at two shapes
    slots.clear()
    assert slots.slots == {}
    slots.graph_for(2)
    assert made == [4, 2, 2]  # recaptured after clear (a closed and reopened runner)


def test_contexts_run_with_layer_name_nvtx_markers() -> None:
    """The exporter builds with ProfilingVerbosity.DETAILED; each runner context lowers its
    NVTX verbosity (TensorRT's IExecutionContext.nvtx_verbosity: DETAILED "will generally
    increase latency in enqueueV3()"); a TensorRT without that property is left alone."""
    from types import SimpleNamespace

    from p2p_deploy.runners.tensorrt_runner import quiet_nvtx

    trt = SimpleNamespace(ProfilingVerbosity=SimpleNamespace(LAYER_NAMES_ONLY="names"))
    ctx = SimpleNamespace(nvtx_verbosity="detailed")
    quiet_nvtx(trt, ctx)
    assert ctx.nvtx_verbosity == "names"

    class OldContext:  # no such property: setting it raises AttributeError, as pybind does
        __slots__ = ()

    quiet_nvtx(trt, OldContext())


def test_capture_enqueues_once_outside_then_inside_a_thread_local_capture(monkeypatch) -> None:
    """TensorRT runner's capture, with stand-ins for torch's graph API (no GPU here): one
    ordinary enqueue and a stream sync first (NVIDIA's "CUDA Graphs" recipe), then the
    captured enqueue on the runner's stream in thread_local mode, so the bench's memory
    sampler thread polling cudaMemGetInfo cannot invalidate it."""
    from types import SimpleNamespace

    import torch

    from p2p_deploy.runners.tensorrt_runner import TensorRTRunner

    events: list[str] = []

    class Graph:
        pass

    class FakeCapture:
        def __init__(self, graph, stream=None, capture_error_mode="global"):
            events.append(f"capture on {stream} mode {capture_error_mode}")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            events.append("capture end")

    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", FakeCapture)

    class Ctx:
        def execute_async_v3(self, stream_handle):
            events.append(f"enqueue on {stream_handle}")
            return True

    runner = object.__new__(TensorRTRunner)
    runner.path = "m.plan"
    runner.mem = SimpleNamespace(
        stream="S", stream_handle=7, synchronize=lambda: events.append("sync")
    )
    graph = runner._capture(Ctx(), 2)
    assert isinstance(graph, Graph)
    assert events == [
        "enqueue on 7",
        "sync",
        "capture on S mode thread_local",
        "enqueue on 7",
        "capture end",
    ]


def test_fp32_torch_runner_turns_cudnn_tf32_off_during_its_calls(tiny_checkpoint: Path) -> None:
    """PyTorch's default torch.backends.cudnn.allow_tf32 = True would make the "fp32" eager
    baseline compute TF32 convolutions on Ampere+ GPUs; the fp32 runner turns it off for its
    own calls only (the flag is back afterwards). Checked on the CPU, where the flag is read
    the same way."""
    import torch

    seen: list[bool] = []
    with open_runner(tiny_checkpoint, device="cpu") as runner:
        assert runner.precision == "fp32"
        runner._model.register_forward_hook(lambda *_: seen.append(torch.backends.cudnn.allow_tf32))
        before = torch.backends.cudnn.allow_tf32
        runner.infer(_batch(1, 32))
        runner.infer_frames(_frames(1, 32))
        assert seen == [False, False] and torch.backends.cudnn.allow_tf32 == before


def test_one_tensorrt_logger_per_process_with_plugins_registered_once(monkeypatch) -> None:
    """init_libnvinfer_plugins keeps the logger it gets: the runner's logger is created once
    per process and never freed (as Polygraphy's get_trt_logger), plugins registered on it
    once, before any plan is deserialized; a TensorRT without the plugin library still works."""
    from types import SimpleNamespace

    from p2p_deploy.runners import tensorrt_runner

    monkeypatch.setattr(tensorrt_runner, "_LOGGER", None)
    registered: list[object] = []

    class Logger:
        ERROR = 2

        def __init__(self, severity):
            self.severity = severity

    trt = SimpleNamespace(
        Logger=Logger, init_libnvinfer_plugins=lambda lg, ns: registered.append((lg, ns))
    )
    first = tensorrt_runner.process_logger(trt)
    assert tensorrt_runner.process_logger(trt) is first and first.severity == Logger.ERROR
    assert registered == [(first, "")]

    def no_plugin_library(_lg, _ns):
        raise OSError("libnvinfer_plugin.so.10: cannot open shared object file")

    monkeypatch.setattr(tensorrt_runner, "_LOGGER", None)
    lean = SimpleNamespace(Logger=Logger, init_libnvinfer_plugins=no_plugin_library)
    assert isinstance(tensorrt_runner.process_logger(lean), Logger)
