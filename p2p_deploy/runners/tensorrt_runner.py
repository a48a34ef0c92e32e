"""TensorRT runner: a serialized engine (``model.plan``) through the name-based I/O API of
TensorRT 10/11 (``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``).

Imports only tensorrt, numpy and (inside :mod:`trt_memory`) torch or pycuda, so a box without
torch runs ``.plan`` files. Dynamic batch within the engine's optimisation profile; larger
batches are split, smaller ones padded up to the profile's minimum (the base class). An engine
built with ``p2p export --spatial`` has a profile over height and width too: it takes any frame
size within it (:mod:`.trt_shapes`; ``p2p run --resize native`` tiles larger frames). One
CUDA stream, pinned host buffers sized for the profile's max shape, async copies; optional
CUDA-graph capture per input shape (batch, height, width), each on its own execution context
(torch buffers only: pycuda has no stream-capture API).

Activation memory: every execution context is created ``USER_MANAGED`` and given the same
block of ``engine.device_memory_size_v2`` bytes (:func:`context_memory_size`,
:func:`user_managed_context`). The default (STATIC) strategy makes each context allocate the
activations of the profile's largest batch itself: with CUDA graphs, one context per batch size
would hold up to ``max_batch`` such allocations. The contexts run one at a time on the runner's
one stream, so one block serves them all (TensorRT forbids only its use by contexts running in
parallel); in graph mode the plain context is not made at all.

Compared line by line with Polygraphy's ``TrtRunner`` (polygraphy/backend/trt/runner.py,
``activate_impl`` / ``_infer_impl`` / ``deactivate_impl``) and ``EngineFromBytes``
(polygraphy/backend/trt/loader.py): every ``set_input_shape``, ``set_tensor_address`` and
``execute_async_v3`` result is checked, as there; the comments below name the line compared.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.deps import require
from p2p_deploy.devices import parse_device
from p2p_deploy.errors import EngineMismatch, P2PError
from p2p_deploy.gpu import gpu_identity
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.opening import ModelFile
from p2p_deploy.runners.base import DeviceStep, Pending, Runner
from p2p_deploy.runners.frame_slots import FrameSlots
from p2p_deploy.runners.trt_memory import CudaMemory, DeviceBuffer, TorchCudaMemory, open_memory
from p2p_deploy.runners.trt_shapes import engine_limits

log = logging.getLogger(__name__)

# torch.cuda.graph's capture mode: other threads' CUDA calls do not invalidate our captures.
CAPTURE_ERROR_MODE = "thread_local"

REBUILD_HINT = (
    "rebuild it on this machine with `p2p export CHECKPOINT --fp16` "
    "(or ship the .onnx and build here)"
)


def _same_version(built: str, here: str) -> bool:
    """TensorRT engines are tied to the exact version that built them (major.minor.patch)."""
    return built.split(".")[:3] == here.split(".")[:3]


def current_gpu(device: int = 0) -> tuple[str, str]:
    """(name, compute capability ``"8.9"``) of CUDA device ``device``.

    Raises:
        MissingDependency: neither torch with CUDA nor pycuda/cuda-python is there to ask.
        EngineMismatch: no such GPU is visible.
    """
    name, cc = gpu_identity(device)
    if name is None or cc is None:
        require("pycuda.driver")  # names the extra to install when no CUDA binding exists
        raise EngineMismatch(f"no CUDA GPU {device} is visible; TensorRT engines need one.")
    return name, cc


def check_engine_fits(path: Path, card: ExportCard, trt_version: str, gpu: tuple[str, str]) -> None:
    """Refuse an engine built for another TensorRT version or GPU, in one sentence.

    Raises:
        EngineMismatch: naming what differs and how to rebuild.
    """
    built_ver = card.tensorrt_version
    if built_ver and not card.version_compatible and not _same_version(built_ver, trt_version):
        raise EngineMismatch(
            f"{path}: built with TensorRT {built_ver} but this machine has TensorRT {trt_version}; "
            f"{REBUILD_HINT}."
        )
    name, cc = gpu
    if card.compute_capability and not card.hardware_compatible and card.compute_capability != cc:
        raise EngineMismatch(
            f"{path}: built for {card.gpu_name or 'a GPU'} (compute capability "
            f"{card.compute_capability}) but this GPU is {name} ({cc}); {REBUILD_HINT}."
        )


_LOGGER: Any = None  # one TensorRT logger for the process, never freed (see process_logger)


def process_logger(trt: Any) -> Any:
    """The process's TensorRT logger (errors only), created once, with libnvinfer's plugins
    registered on it. Once per process and never freed, as Polygraphy's ``get_trt_logger`` and
    NVIDIA's samples keep theirs: ``init_libnvinfer_plugins`` keeps the logger it is given,
    so a per-runner logger freed at ``close()`` would leave it a dangling pointer, and
    TensorRT warns when a runtime gets a logger other than the one it already has. The plugins
    are registered before any plan is deserialized, as Polygraphy's ``EngineFromBytes`` does:
    a plan with libnvinfer_plugin layers (an InstanceNormalization built with the plugin, e.g.
    ``trtexec --pluginInstanceNorm``) finds no creator otherwise; a lean TensorRT without the
    plugin library still loads plugin-free plans."""
    global _LOGGER
    if _LOGGER is None:
        logger = trt.Logger(trt.Logger.ERROR)
        try:
            trt.init_libnvinfer_plugins(logger, "")
        except (AttributeError, OSError, RuntimeError, TypeError) as exc:
            log.debug("TensorRT plugins not registered: %s", exc)
        _LOGGER = logger
    return _LOGGER


def quiet_nvtx(trt: Any, ctx: Any) -> None:
    """Run ``ctx`` with layer-name NVTX markers only. The exporter builds with
    ``ProfilingVerbosity.DETAILED`` (for the inspector record in the card), and a context
    defaults to the build's verbosity, which "will generally increase latency in enqueueV3()"
    (TensorRT, ``IExecutionContext.nvtx_verbosity``; it "does not affect how IEngineInspector
    interacts with the engine"). LAYER_NAMES_ONLY is trtexec's default. A TensorRT without the
    property keeps its default."""
    try:
        ctx.nvtx_verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY
    except (AttributeError, TypeError):
        pass


def context_memory_size(engine: Any) -> int:
    """Bytes of activation and scratch memory an execution context needs, for any shape of any
    profile: ``ICudaEngine.device_memory_size_v2`` (TensorRT 10.1 and newer: "The amount of
    device memory required by an IExecutionContext"), ``device_memory_size`` before it."""
    size = getattr(engine, "device_memory_size_v2", None)
    if size is None:
        size = engine.device_memory_size
    return int(size)


def user_managed_context(trt: Any, engine: Any, memory: DeviceBuffer) -> Any:
    """An execution context that uses ``memory`` (at least :func:`context_memory_size` bytes,
    256-byte aligned: torch's and pycuda's CUDA allocations are) instead of allocating its own.

    As Polygraphy's ``TrtRunner`` (allocation_strategy "profile"/"runtime",
    backend/trt/runner.py): ``create_execution_context(USER_MANAGED)``, then
    ``set_device_memory(ptr, size)`` on TensorRT 10.1+ or ``device_memory = ptr`` before.

    Raises:
        RuntimeError: TensorRT returned no context (e.g. out of memory).
    """
    ctx = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
    if ctx is None:
        raise RuntimeError("TensorRT could not create an execution context")
    if hasattr(ctx, "set_device_memory"):
        ctx.set_device_memory(memory.ptr, memory.nbytes)
    else:
        ctx.device_memory = memory.ptr
    return ctx


class ContextPerShape:
    """Execution contexts for CUDA-graph replay: one per input shape, created on first use.

    A captured CUDA graph replays the exact kernels, shapes and addresses of its capture, on the
    context it was captured from; setting another input shape on that context and replaying
    would run stale kernels. So each input shape (the runner's key: (batch, height, width))
    gets its own context (its input shape is set once, at creation) and its own graph.
    ``create(key)`` makes a context with that input shape; ``capture(ctx, key)`` returns its
    graph. Neither runs here without a GPU, the bookkeeping does.
    """

    def __init__(self, create: Any, capture: Any) -> None:
        self._create = create
        self._capture = capture
        self.slots: dict[Any, tuple[Any, Any]] = {}

    def graph_for(self, n: Any) -> Any:
        """The graph for input shape ``n`` (creating its context and capturing on first use)."""
        slot = self.slots.get(n)
        if slot is None:
            ctx = self._create(n)
            slot = (ctx, self._capture(ctx, n))
            self.slots[n] = slot
        return slot[1]

    def clear(self) -> None:
        self.slots.clear()


class TensorRTRunner(Runner):
    """Runs a TensorRT engine with its card ``model.plan.json``.

    Args:
        model: ``model.plan`` / ``model.engine``, opened
            (:func:`~p2p_deploy.models.opening.open_model`) or a path.
        device: ``cuda`` or ``cuda:N``.
        memory: ``auto`` (torch when it has CUDA, else pycuda), ``torch`` or ``pycuda``.
        cuda_graphs: capture one CUDA graph per input shape on first use (torch memory only).
    """

    backend = "tensorrt"

    def __init__(
        self,
        model: ModelFile | str | Path,
        device: str | None = None,
        memory: str = "auto",
        cuda_graphs: bool = False,
    ) -> None:
        super().__init__(model, device or "cuda:0")
        assert self.model is not None
        if self.model.kind != "tensorrt":
            raise P2PError(f"{self.path}: a {self.model.kind} model, not a TensorRT engine.")
        if self.device == "cpu":
            raise P2PError(
                f"{self.path}: TensorRT engines run on a CUDA GPU only; use the .onnx for the CPU."
            )
        if memory not in ("auto", "torch", "pycuda"):
            raise P2PError(f"memory must be auto, torch or pycuda, got {memory!r}.")
        # Before the card: without TensorRT no card or re-export makes the engine run,
        # so the one thing to say is which extra to install.
        require("tensorrt")
        self._index = parse_device(self.device, allow_auto=False).cuda_index
        self._memory_pref = memory
        self.cuda_graphs = cuda_graphs
        # An engine cannot be understood (nor checked against this GPU) without its card.
        self.card: ExportCard = self.model.export_card or read_export_card(self.model.file)
        self.image_size = self.card.image_size
        self.precision = self.card.precision
        self.test_norm = self.card.test_norm
        self.input_name = self.card.input_name
        self.output_name = self.card.output_name
        self.mem: CudaMemory | None = None
        self._trt: Any = None  # the tensorrt module, once activated
        self._logger: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None  # the context of ordinary (non-graph) runs
        self._context_memory: DeviceBuffer | None = None  # shared by every context
        self._graphs = ContextPerShape(self._graph_context, self._capture)
        self._in_dtype = np.dtype(np.float32)
        self._out_dtype = np.dtype(np.float32)
        self._d_in: DeviceBuffer | None = None
        self._d_out: DeviceBuffer | None = None
        self._h_in: np.ndarray | None = None
        self._h_out: np.ndarray | None = None
        self._slots: FrameSlots | None = None

    def _activate(self) -> None:
        trt = require("tensorrt")
        check_engine_fits(self.path, self.card, trt.__version__, current_gpu(self._index))
        self.mem = open_memory(self._memory_pref, self._index)
        if self.cuda_graphs and not isinstance(self.mem, TorchCudaMemory):
            log.warning("CUDA graphs need torch buffers; running %s without them", self.path)
            self.cuda_graphs = False
        with self.mem.current():
            self._load(trt)

    def _load(self, trt: Any) -> None:
        self._trt = trt
        self._logger = process_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        if self.card.version_compatible:
            # A version-compatible plan embeds the lean runtime it runs with (host code):
            # TensorRT deserializes it only when allowed. Polygraphy's EngineFromBytes
            # (backend/trt/loader.py) sets this for every plan; here only where the card says
            # the plan was built so, since it lets the plan run code of its own.
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(self.model.data)  # read once
        if engine is None:  # as EngineFromBytes: None, not an exception, on failure
            raise EngineMismatch(
                f"{self.path}: TensorRT {trt.__version__} cannot deserialize this engine (other "
                f"version or GPU, or a damaged file); {REBUILD_HINT}."
            )
        self._engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineMismatch(
                f"{self.path}: expected one input and one output, found {inputs} -> {outputs}."
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        shape = tuple(engine.get_tensor_shape(self.input_name))
        # Buffers sized by profile 0's max shape, as NVIDIA's samples/python/common_runtime.py
        # (allocate_buffers: get_tensor_profile_shape(name, idx)[-1]); batch, H and W limits
        # from the same profile, checked against the card (trt_shapes.engine_limits).
        profile = (
            engine.get_tensor_profile_shape(self.input_name, 0) if -1 in shape else None
        )
        limits = engine_limits(self.path, shape, profile, self.card)
        self.min_batch, self.max_batch = limits.min_batch, limits.max_batch
        self.sizes = limits.sizes
        h, w = limits.max_hw
        # One pinned host pair and one device pair sized for the largest batch at the largest
        # size, reused by every context and viewed as each call's shape (runs are serial on one
        # stream). Polygraphy's TrtRunner instead grows its buffers per call; fixed buffers
        # keep addresses stable, which CUDA graphs need.
        per_in = 3 * h * w * self._in_dtype.itemsize
        per_out = 3 * h * w * self._out_dtype.itemsize
        self._d_in = self.mem.device_empty(per_in * self.max_batch)
        self._d_out = self.mem.device_empty(per_out * self.max_batch)
        self._h_in = self.mem.host_empty((self.max_batch * 3 * h * w,), self._in_dtype)
        self._h_out = self.mem.host_empty((self.max_batch * 3 * h * w,), self._out_dtype)
        # One activation block for every context (module docstring); at least a byte, so that
        # its pointer is a real allocation even for an engine that needs none.
        self._context_memory = self.mem.device_empty(max(context_memory_size(engine), 1))
        # Graph mode replays per-shape contexts only: no plain context to pay for.
        self._context = None if self.cuda_graphs else self._new_context()
        # Frames (submit_frames): two pinned host slots, so the host fills the next batch
        # while the GPU works on this one.
        mem = self.mem
        self._slots = FrameSlots(lambda nbytes: mem.host_empty((max(nbytes, 1),), np.uint8))
        self.frames_in_flight = len(self._slots.slots)
        log.debug(
            "tensorrt runner: %s, batch %d..%d, %s buffers",
            self.describe(),
            self.min_batch,
            self.max_batch,
            self.mem.name,
        )

    def _new_context(self) -> Any:
        """An execution context bound to the runner's buffers (TrtRunner.activate_impl:
        ``create_execution_context()`` returns None on failure, e.g. out of device memory)."""
        try:
            ctx = user_managed_context(self._trt, self._engine, self._context_memory)
        except RuntimeError as exc:
            raise RuntimeError(f"{self.path}: {exc}") from None
        quiet_nvtx(self._trt, ctx)
        for name, buf in ((self.input_name, self._d_in), (self.output_name, self._d_out)):
            if not ctx.set_tensor_address(name, buf.ptr):  # TrtRunner._infer_impl checks it
                raise RuntimeError(f"{self.path}: TensorRT refused the address of {name!r}")
        return ctx

    def _set_shape(self, ctx: Any, key: tuple[int, int, int]) -> None:
        n, h, w = key
        # TrtRunner._infer_impl: set only when it changed; False when outside the profile.
        if tuple(ctx.get_tensor_shape(self.input_name)) != (n, 3, h, w):
            if not ctx.set_input_shape(self.input_name, (n, 3, h, w)):
                raise RuntimeError(
                    f"{self.path}: TensorRT refused input shape ({n}, 3, {h}, {w}); the engine "
                    f"takes batch {self.min_batch}..{self.max_batch}, frames "
                    f"{self.size_range.describe()}"
                )

    def _execute(self, ctx: Any) -> None:
        # TrtRunner._infer_impl: execute_async_v3 returns False on failure, it raises nothing.
        if not ctx.execute_async_v3(self.mem.stream_handle):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")

    def _graph_context(self, key: tuple[int, int, int]) -> Any:
        ctx = self._new_context()
        self._set_shape(ctx, key)
        return ctx

    def _capture(self, ctx: Any, key: Any) -> Any:
        """Capture ``ctx``'s run (its shape already set) into a torch CUDA graph on the
        runner's stream. NVIDIA's developer guide ("CUDA Graphs"): enqueue once before
        capturing, so TensorRT's shape-dependent work happens outside the graph.

        ``capture_error_mode="thread_local"``: in torch's default "global" mode any CUDA call
        another thread makes during the capture (the bench's GPU-memory sampler polls
        ``cudaMemGetInfo`` every few ms around the first call at each batch size, which is
        when the capture happens) invalidates it (vLLM moved every capture path to
        thread_local for the same reason, vllm-project/vllm#48053). Unsafe calls on this
        thread, TensorRT's included, still fail the capture."""
        import torch

        self._execute(ctx)
        self.mem.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.mem.stream, capture_error_mode=CAPTURE_ERROR_MODE):
            self._execute(ctx)
        return graph

    def _enqueue(self, key: tuple[int, int, int]) -> None:
        """Run the engine on the device input viewed as (n, 3, h, w), ``key`` = (n, h, w)
        (async on the stream)."""
        if not self.cuda_graphs:
            self._set_shape(self._context, key)
            self._execute(self._context)
            return
        import torch

        # Replay on the runner's stream: replay() launches on torch's *current* stream, which
        # must be the one the input/output copies are ordered on.
        with torch.cuda.stream(self.mem.stream):
            self._graphs.graph_for(key).replay()

    def _close(self) -> None:
        if self.mem is None:
            return
        with self.mem.current():  # TensorRT objects are freed on the device they live on
            self.mem.synchronize()  # nothing queued may outlive the buffers it uses
            self._slots = None
            self._graphs.clear()
            self._context = None
            self._context_memory = None  # after the contexts that use it
            self._engine = None
            self._runtime = None
            self._d_in = self._d_out = None
            self._h_in = self._h_out = None
        self.mem.close()
        self.mem = None

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        # n within min_batch..max_batch (the base class split and padded it), (h, w) within
        # the profile (the base class checked it against size_range).
        n, _, h, w = batch.shape
        h_in = self._h_in[: batch.size].reshape(batch.shape)
        h_out = self._h_out[: batch.size].reshape(batch.shape)
        # The order of common_runtime.py's _do_inference_base: async H2D copy, enqueue, async
        # D2H copy, synchronize the stream, all on one stream (that sample ignores the result
        # of execute_async_v3; _execute checks it, as Polygraphy's TrtRunner does).
        with self.mem.current():
            h_in[:] = batch
            self.mem.to_device(self._d_in, h_in)
            self._enqueue((n, h, w))
            self.mem.to_host(h_out, self._d_out)
            self.mem.synchronize()
        return h_out.copy()

    def _submit_frames_chunk(self, frames: np.ndarray) -> Pending:
        """Queue one batch of uint8 frames and return while the GPU works on it (two batches
        may be in flight: :mod:`p2p_deploy.runners.frame_slots`).

        With torch buffers the frames are uploaded as uint8 from a pinned slot and converted
        to and from [-1, 1] RGB NCHW on the GPU, straight into and out of the engine's I/O
        buffers; the uint8 result is downloaded into the slot's pinned output. With pycuda
        (no torch) the conversion runs on the CPU into the slot's pinned input, and the float
        output is converted back when the result is taken. Everything is queued on the one
        stream, so the engine's device buffers are reused only after the previous batch has
        left them.
        """
        assert self.mem is not None and self._slots is not None
        n, h, w = frames.shape[:3]
        key, count = (n, h, w), n * 3 * h * w
        slot = self._slots.take()
        if isinstance(self.mem, TorchCudaMemory):
            import torch

            from p2p_deploy.imaging import torch_bgr8_to_tensor, torch_tensor_to_bgr8

            in_t, out_t = _torch_dtype(self._in_dtype), _torch_dtype(self._out_dtype)
            h_in = slot.host_in(frames.shape, np.uint8)
            # The frames and, in the byte after them, whether the engine's output was finite.
            flat = slot.host_out((frames.size + 1,), np.uint8)
            h_out, h_ok = flat[:-1].reshape(frames.shape), flat[-1:]
            np.copyto(h_in, frames)
            with self.mem.current(), torch.cuda.stream(self.mem.stream):
                f = torch.from_numpy(h_in).to(self.mem.device, non_blocking=True)
                d_in = self._d_in.handle.view(in_t)[:count].view(n, 3, h, w)
                d_in.copy_(torch_bgr8_to_tensor(f, in_t))
                self._enqueue(key)
                d_out = self._d_out.handle.view(out_t)[:count].view(n, 3, h, w)
                ok = torch.isfinite(d_out).all().reshape(1).to(torch.uint8)
                torch.from_numpy(h_out).copy_(torch_tensor_to_bgr8(d_out), non_blocking=True)
                torch.from_numpy(h_ok).copy_(ok, non_blocking=True)
                event = self.mem.record_event()

            def wait_checked() -> None:
                event.synchronize()
                if not h_ok[0]:  # NaN never becomes a black frame
                    raise self._not_finite()

            return self._slots.pending(slot, wait_checked, h_out)
        from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8

        h_in = slot.host_in((n, 3, h, w), self._in_dtype)
        h_out = slot.host_out((n, 3, h, w), self._out_dtype)
        np.copyto(h_in, bgr8_to_tensor(frames), casting="same_kind")
        mem = self.mem
        with mem.current():
            mem.to_device(self._d_in, h_in)
            self._enqueue(key)
            mem.to_host(h_out, self._d_out)
            event = mem.record_event()  # its synchronize() pushes the runner's context
        floats = self._slots.pending(slot, event.synchronize, h_out)
        return Pending(lambda: tensor_to_bgr8(self._finite(floats.result())))

    def device_step(self, batch: np.ndarray) -> DeviceStep | None:
        """With torch buffers: ``batch`` (padded to the profile minimum) is uploaded into the
        engine's input buffer once; the step is the engine alone on the runner's stream."""
        self._check_active()
        if not isinstance(self.mem, TorchCudaMemory):
            return None
        self.infer(batch)  # uploads it (and captures its graph when graphs are on)
        n = max(batch.shape[0], self.min_batch)
        if n > (self.max_batch or n):
            return None
        key = (n, int(batch.shape[2]), int(batch.shape[3]))

        def step() -> None:
            with self.mem.current():
                self._enqueue(key)

        return DeviceStep(step, self.mem.stream)

    def _describe_extras(self) -> list[str]:
        extras = super()._describe_extras()
        if self.cuda_graphs:
            extras.append("cuda-graphs")
        return extras


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}[dtype]
