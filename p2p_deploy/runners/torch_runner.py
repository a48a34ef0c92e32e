"""PyTorch runner: a generator checkpoint run eagerly (or compiled / CUDA-graphed).

CPU: fp32. CUDA: fp16 and channels-last by default, cudnn.benchmark on, optional CUDA graphs
(one per input shape, captured on first use) or torch.compile. Always under ``inference_mode``.
The generator is fully convolutional: the runner takes any height and width that are multiples
of its stride ``2**n_down`` (``p2p run --resize native``); each new shape autotunes (cuDNN),
captures (graphs) or compiles (``compile``: static shapes, so one compile per shape) once.
An fp32 runner computes in fp32: cuDNN's TF32 convolutions (on by default in PyTorch,
``torch.backends.cudnn.allow_tf32``) are off during its calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from p2p_deploy.errors import P2PError
from p2p_deploy.imaging import torch_bgr8_to_tensor, torch_tensor_to_bgr8
from p2p_deploy.models.card import TEST_NORMS
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.opening import ModelFile
from p2p_deploy.models.spatial import SizeRange
from p2p_deploy.runners.base import DeviceStep, Pending, Runner
from p2p_deploy.runners.frame_slots import FrameSlots
from p2p_deploy.runners.trt_memory import TorchCudaMemory

log = logging.getLogger(__name__)


class TorchRunner(Runner):
    """Runs a checkpoint (run folder, ``.safetensors`` or canonical ``latest_net_G.pth``).

    Args:
        model: the checkpoint, opened (:func:`~p2p_deploy.models.opening.open_model`) or a path.
        device: ``cpu`` (default when no CUDA), ``cuda`` or ``cuda:N``.
        precision: ``fp32`` or ``fp16`` (fp16 needs CUDA; default fp16 on CUDA, fp32 on CPU).
        test_norm: ``stats`` or ``running``; default from the checkpoint's card.
        channels_last: NHWC memory format (default on CUDA).
        cuda_graphs: capture one CUDA graph per input shape (CUDA only); with ``compile`` the
            compiled kernels are captured (our own capture on the runner's stream, rather than
            inductor's ``mode="reduce-overhead"``, whose graph trees manage streams of their
            own: pytorch/pytorch#180396, #185546).
        compile: ``torch.compile`` the generator (static shapes). Compiled code is cached on
            disk by inductor (:func:`inductor_cache_dir`), so a second run starts faster.
        static_batch: every model call takes exactly this many frames (smaller batches are
            padded, larger ones split): one compiled shape, no recompiling for the last batch.
        max_batch: split larger batches (None: no limit).

    On CUDA, frames (:meth:`submit_frames`) are uploaded as uint8 from pinned memory on the
    runner's own stream, converted to [-1, 1] and back on the GPU, and downloaded as uint8;
    two batches may be in flight (:mod:`p2p_deploy.runners.frame_slots`).
    """

    backend = "torch"

    def __init__(
        self,
        model: ModelFile | str | Path,
        device: str | None = None,
        precision: str | None = None,
        test_norm: str | None = None,
        channels_last: bool | None = None,
        cuda_graphs: bool = False,
        compile: bool = False,
        static_batch: int | None = None,
        max_batch: int | None = None,
    ) -> None:
        super().__init__(model, device or ("cuda" if torch.cuda.is_available() else "cpu"))
        assert self.model is not None and self.model.card is not None
        if not self.model.is_checkpoint:
            raise P2PError(
                f"{self.path}: an exported {self.model.kind} model, not generator weights; the "
                "torch runner runs checkpoints (run folder, .safetensors, .pth)."
            )
        self._dev = torch.device(self.device)
        if self._dev.type == "cuda" and not torch.cuda.is_available():
            raise P2PError(
                f"device {self.device} requested but torch sees no CUDA GPU; use --device cpu."
            )
        cuda = self._dev.type == "cuda"
        self.precision = precision or ("fp16" if cuda else "fp32")
        if self.precision not in ("fp32", "fp16"):
            raise P2PError(f"precision must be fp32 or fp16, got {self.precision!r}.")
        if self.precision == "fp16" and not cuda:
            raise P2PError("fp16 with the torch runner needs a CUDA device; use fp32 on the CPU.")
        if test_norm is not None and test_norm not in TEST_NORMS:
            raise P2PError(f"test norm must be one of {', '.join(TEST_NORMS)}, got {test_norm!r}.")
        if static_batch is not None and static_batch < 1:
            raise P2PError(f"static batch must be at least 1, got {static_batch}.")
        card = self.model.card
        self.test_norm = test_norm or card.test_norm
        self.channels_last = cuda if channels_last is None else channels_last
        self.cuda_graphs = cuda_graphs and cuda
        self.compile = compile
        self.max_batch = static_batch or max_batch
        self.min_batch = static_batch or 1
        self.config: GeneratorConfig = card.generator
        self.image_size = card.image_size
        stride = self.config.stride  # any multiple of it: the U-Net is fully convolutional
        self.sizes = SizeRange((stride, stride), None, stride)
        self.compile_seconds: float | None = None  # the first (compiling) call, after warmup()
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self._model: torch.nn.Module | None = None
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self._mem: TorchCudaMemory | None = None
        self._slots: FrameSlots | None = None

    def _activate(self) -> None:
        assert self.model is not None
        model = prepare_generator(self.model.generator(), self.test_norm)
        model = model.to(self._dev, dtype=self._dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self._dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest
            self._mem = TorchCudaMemory(self._dev.index or 0)
            self._slots = FrameSlots(lambda n: self._mem.host_empty((max(n, 1),), np.uint8))
            self.frames_in_flight = len(self._slots.slots)
        if self.compile:
            use_inductor_cache()
            # Static shapes (dynamic=False): one kernel set per batch shape; with static_batch
            # the pipeline only ever calls one. The compiled module is captured in our CUDA
            # graphs like the eager one (its first call, which compiles, runs before capture).
            model = torch.compile(model, dynamic=False)
        self._model = model
        log.debug("torch runner: %s", self.describe())

    def _close(self) -> None:
        if self._mem is not None:
            self._mem.synchronize()  # nothing queued may outlive the buffers it uses
        self._model = None
        self._graphs.clear()
        self._slots = None
        self._mem = None

    def warmup(self, batch: int | None = None, size: tuple[int, int] | None = None) -> float:
        """One batch before the first frame (see Runner.warmup): compiles with ``compile``
        (its seconds are kept in :attr:`compile_seconds`), autotunes cuDNN, captures graphs."""
        seconds = super().warmup(batch, size)
        if self.compile:
            self.compile_seconds = seconds
        return seconds

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._dev, dtype=self._dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _graph_call(self, key: tuple, fn: Callable[[torch.Tensor], torch.Tensor],
                    x: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """``fn(x)`` through the CUDA graph captured for ``key`` (captured on first use, on the
        current stream's device). Each graph owns its static input/output (torch's "whole
        network capture" recipe), so graphs of different shapes never share buffers; the
        output is overwritten by the graph's next replay, so callers copy it out (in stream
        order) before that.

        A batch smaller than one already captured replays the smallest such graph on its
        first rows (:func:`captured_key_for`) instead of capturing its own: the last, partial
        batch of a run then costs no capture and no cuDNN autotuning inside the run. The rows
        past it hold an earlier batch's frames; each output row depends on its own input row
        only (the runner contract), and only the first rows are returned."""
        # On the runner's device (cuda:N), not the current one: the side stream, the capture's
        # internal stream and the replay all follow the current device.
        with torch.cuda.device(self._dev):
            key = captured_key_for(self._graphs, key) or key
            if key not in self._graphs:
                static_in = torch.empty_like(x)
                static_in.copy_(x)
                side = torch.cuda.Stream(device=self._dev)
                side.wait_stream(torch.cuda.current_stream(self._dev))
                with torch.cuda.stream(side):  # warm-up outside the graph, as torch's docs say
                    for _ in range(3):
                        fn(static_in)
                torch.cuda.current_stream(self._dev).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: another thread's CUDA call (the bench's memory sampler) must
                # not invalidate the capture (see tensorrt_runner.CAPTURE_ERROR_MODE).
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    static_out = fn(static_in)
                self._graphs[key] = (graph, static_in, static_out)
            graph, static_in, static_out = self._graphs[key]
            n = x.shape[0]
            static_in[:n].copy_(x)
            graph.replay()  # on the current stream
        if isinstance(static_out, tuple):  # (frames, flag): the flag covers the whole batch
            first, *rest = static_out
            return (first if n == first.shape[0] else first[:n], *rest)
        return static_out if n == static_out.shape[0] else static_out[:n]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) tensor in [-1, 1] on any device -> (n, 3, H, W) on :attr:`device` in
        the runner's dtype; no host copies of the result."""
        x = self._prepare(x)
        with torch.inference_mode(), _no_tf32(self.precision == "fp32"):
            if self.cuda_graphs:
                return self._graph_call(("float", *x.shape), self._model, x)
            return self._model(x)

    def _frames_model(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, H, W, 3) uint8 BGR on the device -> (the same: conversion, model, conversion;
        a (1,) uint8 tensor, 1 when every model output was finite)."""
        x = torch_bgr8_to_tensor(frames, self._dtype)
        # The converted frames are an NHWC permute (channels-last strides), so both layouts
        # are asked for: without channels_last the model must get NCHW, or every convolution
        # after it runs channels-last (PyTorch follows the input's memory format), which is
        # not the NCHW row the bench labels it (nor the float path's layout).
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        y = self._model(x.contiguous(memory_format=fmt))
        ok = torch.isfinite(y).all().reshape(1).to(torch.uint8)
        return torch_tensor_to_bgr8(y), ok

    def _frames_forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames on the device through :meth:`_frames_model` (graphed when asked)."""
        with torch.inference_mode(), _no_tf32(self.precision == "fp32"):
            if self.cuda_graphs:
                return self._graph_call(("frames", *frames.shape), self._frames_model, frames)
            return self._frames_model(frames)

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(torch.from_numpy(batch)).float().cpu().numpy()

    def _submit_frames_chunk(self, frames: np.ndarray) -> Pending:
        """CPU: translate now. CUDA: copy into a pinned slot, queue upload (uint8), conversion,
        model, conversion and download (uint8) into the slot's pinned output on the runner's
        stream, record an event and return (see :mod:`p2p_deploy.runners.frame_slots`)."""
        if self._mem is None or self._slots is None:
            f = torch.from_numpy(np.ascontiguousarray(frames))
            with torch.inference_mode():
                d_out, ok = self._frames_forward(f)
                if not bool(ok[0]):  # NaN never becomes a black frame
                    raise self._not_finite()
                out = d_out.numpy()
            return Pending(lambda: out)
        mem, slot = self._mem, self._slots.take()
        h_in = slot.host_in(frames.shape, np.uint8)
        # The output frames and, in the byte after them, whether the model's output was finite
        # (computed on the device, in the graph: no host sync per batch).
        flat = slot.host_out((frames.size + 1,), np.uint8)
        h_out, h_ok = flat[:-1].reshape(frames.shape), flat[-1:]
        np.copyto(h_in, frames)
        with torch.cuda.device(self._dev), torch.cuda.stream(mem.stream):
            d_in = torch.from_numpy(h_in).to(self._dev, non_blocking=True)
            d_out, d_ok = self._frames_forward(d_in)
            torch.from_numpy(h_out).copy_(d_out, non_blocking=True)
            torch.from_numpy(h_ok).copy_(d_ok, non_blocking=True)
            event = mem.record_event()
        # The device tensors may be freed now: the caching allocator reuses their blocks only
        # for work queued later on the same stream.

        def wait() -> None:
            event.synchronize()
            if not h_ok[0]:
                raise self._not_finite()

        return self._slots.pending(slot, wait, h_out)

    def device_step(self, batch: np.ndarray) -> DeviceStep | None:
        """On CUDA: the model on ``batch`` already on the GPU, on torch's current stream of the
        runner's device (where :meth:`_forward` enqueues its kernels)."""
        self._check_active()
        if self._dev.type != "cuda":
            return None
        x = self._prepare(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return DeviceStep(lambda: self._forward(x), torch.cuda.current_stream(self._dev))

    def frames_device_step(self, frames: np.ndarray) -> DeviceStep | None:
        """On CUDA: :meth:`_frames_forward` (conversions and model) on ``frames`` already on
        the GPU, on the runner's stream: the device time of what :meth:`submit_frames` runs."""
        self._check_active()
        if self._mem is None:
            return None
        stream = self._mem.stream
        with torch.cuda.device(self._dev):
            d = torch.from_numpy(np.ascontiguousarray(frames)).to(self._dev)

        def step() -> None:
            with torch.cuda.device(self._dev), torch.cuda.stream(stream):
                self._frames_forward(d)

        return DeviceStep(step, stream)

    def _describe_extras(self) -> list[str]:
        extras = super()._describe_extras()
        if self.channels_last:
            extras.append("channels-last")
        if self.cuda_graphs:
            extras.append("cuda-graphs")
        if self.compile:
            extras.append("compiled")
        return extras


def captured_key_for(captured: Iterable[tuple], key: tuple) -> tuple | None:
    """The key of the graph to replay for ``key`` = ``(tag, n, *row)``: ``key`` itself when
    captured, else the captured ``(tag, m, *row)`` with the smallest ``m > n`` (the batch is
    replayed on its first rows), else None (capture ``key``)."""
    keys = set(captured)
    if key in keys:
        return key
    tag, n, row = key[0], key[1], tuple(key[2:])
    larger = [k for k in keys if k[0] == tag and tuple(k[2:]) == row and k[1] > n]
    return min(larger, key=lambda k: k[1]) if larger else None


def inductor_cache_dir() -> Path:
    """Where compiled kernels are kept between runs: ``$TORCHINDUCTOR_CACHE_DIR`` when the user
    set it, else ``$XDG_CACHE_HOME/p2p-deploy/inductor`` (``~/.cache/p2p-deploy/inductor``);
    inductor's own default, a folder under /tmp, is lost on many machines at reboot."""
    import os

    value = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if value and not _inductor_default(value):
        return Path(value)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "p2p-deploy" / "inductor"


def _inductor_default(value: str) -> bool:
    """True for inductor's own default folder (``<tmp>/torchinductor_<user>``). Importing
    ``torch._dynamo`` or ``torch._inductor.config`` (``torch.onnx.export(dynamo=True)`` does,
    e.g. the bench's ONNX export earlier in the same process) writes it into
    ``$TORCHINDUCTOR_CACHE_DIR``, so a set variable is not always the user's choice."""
    import tempfile

    p = Path(value)
    return p.parent == Path(tempfile.gettempdir()) and p.name.startswith("torchinductor_")


def use_inductor_cache() -> Path:
    """Point inductor at :func:`inductor_cache_dir` (before the first compile) with its FX
    graph and autotuning caches on; returns the folder. Inductor reads the variable whenever
    it needs the folder (``torch._inductor.runtime.cache_dir_utils.cache_dir``), so setting it
    here, after torch was imported, takes effect."""
    import os

    folder = inductor_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only home: compile still works, only without reuse
        log.warning("%s: no inductor cache (%s); compiling from scratch", folder, exc)
        return folder
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    return folder


@contextlib.contextmanager
def _no_tf32(active: bool) -> Iterator[None]:
    """cuDNN convolutions without TF32 inside the block (when ``active``). PyTorch's default
    ``torch.backends.cudnn.allow_tf32 = True`` ("TensorFloat-32 (TF32) on Ampere (and later)
    devices", PyTorch CUDA semantics notes) rounds an "fp32" convolution's inputs to 10-bit
    mantissas: the fp32 baseline the bench measures every other runner against would not be
    fp32. Set per call, not globally, so an fp16 runner in the same process is unaffected."""
    if not active:
        yield
        return
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before
