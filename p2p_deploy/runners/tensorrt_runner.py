"""TensorRT runner: a serialized engine (``model.plan``) through the name-based I/O API of
TensorRT 10/11 (``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``).

Imports only tensorrt, numpy and (inside :mod:`trt_memory`) torch or pycuda, so a box without
torch runs ``.plan`` files. Dynamic batch within the engine's optimisation profile; larger
batches are split. One CUDA stream, pinned host buffers, async copies; optional CUDA-graph
capture per batch size (torch buffers only: pycuda has no stream-capture API).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from p2p_deploy.deps import require
from p2p_deploy.errors import EngineMismatch, P2PError
from p2p_deploy.gpu import gpu_identity
from p2p_deploy.runners.base import Runner, batch_slices
from p2p_deploy.runners.trt_memory import CudaMemory, DeviceBuffer, TorchCudaMemory, open_memory
from p2p_deploy.sidecar import ModelSidecar

log = logging.getLogger(__name__)

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


def check_engine_fits(
    path: Path, sidecar: ModelSidecar, trt_version: str, gpu: tuple[str, str]
) -> None:
    """Refuse an engine built for another TensorRT version or GPU, in one sentence.

    Raises:
        EngineMismatch: naming what differs and how to rebuild.
    """
    built_ver = sidecar.tensorrt_version
    if built_ver and not sidecar.version_compatible and not _same_version(built_ver, trt_version):
        raise EngineMismatch(
            f"{path}: built with TensorRT {built_ver} but this machine has TensorRT {trt_version}; "
            f"{REBUILD_HINT}."
        )
    name, cc = gpu
    if (
        sidecar.compute_capability
        and not sidecar.hardware_compatible
        and sidecar.compute_capability != cc
    ):
        raise EngineMismatch(
            f"{path}: built for {sidecar.gpu_name or 'a GPU'} (compute capability "
            f"{sidecar.compute_capability}) but this GPU is {name} ({cc}); {REBUILD_HINT}."
        )


class TensorRTRunner(Runner):
    """Runs a TensorRT engine with its ``model.plan.json`` sidecar.

    Args:
        path: ``model.plan`` / ``model.engine``.
        device: ``cuda`` or ``cuda:N``.
        memory: ``auto`` (torch when it has CUDA, else pycuda), ``torch`` or ``pycuda``.
        cuda_graphs: capture one CUDA graph per batch size on first use (torch memory only).
    """

    backend = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        device: str | None = None,
        memory: str = "auto",
        cuda_graphs: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise P2PError(f"{self.path}: no such engine file.")
        if device == "cpu":
            raise P2PError(
                f"{self.path}: TensorRT engines run on a CUDA GPU only; use the .onnx for the CPU."
            )
        # Before the sidecar: without TensorRT no sidecar or re-export makes the engine run,
        # so the one thing to say is which extra to install.
        require("tensorrt")
        self.device = device or "cuda:0"
        self._index = int(self.device.split(":")[1]) if ":" in self.device else 0
        self._memory_pref = memory
        self.cuda_graphs = cuda_graphs
        self.sidecar = ModelSidecar.read(self.path)
        self.image_size = self.sidecar.image_size
        self.precision = self.sidecar.precision
        self.test_norm = self.sidecar.test_norm
        self._engine = None
        self._context = None
        self._graphs: dict[int, object] = {}

    def _on_device(self) -> contextlib.AbstractContextManager:
        """Make ``cuda:N`` the current device: TensorRT deserializes onto, allocates on and
        runs on the current device. Torch buffers: ``torch.cuda.device``; pycuda buffers have
        their device's context pushed for the runner's lifetime (see :class:`PycudaMemory`)."""
        if isinstance(getattr(self, "mem", None), TorchCudaMemory):
            import torch

            return torch.cuda.device(self._index)
        return contextlib.nullcontext()

    def activate(self) -> None:
        trt = require("tensorrt")
        check_engine_fits(self.path, self.sidecar, trt.__version__, current_gpu(self._index))
        self.mem: CudaMemory = open_memory(self._memory_pref, self._index)
        with self._on_device():
            self._activate(trt)

    def _activate(self, trt) -> None:
        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
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
        s = self.image_size
        if len(shape) != 4 or tuple(shape[1:]) != (3, s, s):
            raise EngineMismatch(
                f"{self.path}: engine input {shape} does not match its sidecar (-1, 3, {s}, {s})."
            )
        if shape[0] == -1:
            lo, _opt, hi = engine.get_tensor_profile_shape(self.input_name, 0)
            self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        else:
            self.min_batch = self.max_batch = int(shape[0])
        self._context = engine.create_execution_context()
        # One pinned host pair and one device pair sized for the largest batch, reused.
        per_in = 3 * s * s * self._in_dtype.itemsize
        per_out = 3 * s * s * self._out_dtype.itemsize
        self._d_in: DeviceBuffer = self.mem.device_empty(per_in * self.max_batch)
        self._d_out: DeviceBuffer = self.mem.device_empty(per_out * self.max_batch)
        self._h_in = self.mem.host_empty((self.max_batch, 3, s, s), self._in_dtype)
        self._h_out = self.mem.host_empty((self.max_batch, 3, s, s), self._out_dtype)
        self._context.set_tensor_address(self.input_name, self._d_in.ptr)
        self._context.set_tensor_address(self.output_name, self._d_out.ptr)
        if self.cuda_graphs and not isinstance(self.mem, TorchCudaMemory):
            log.warning("CUDA graphs need torch buffers; running %s without them", self.path)
            self.cuda_graphs = False
        log.debug(
            "tensorrt runner: %s, batch %d..%d, %s buffers",
            self.describe(),
            self.min_batch,
            self.max_batch,
            self.mem.name,
        )

    def close(self) -> None:
        with self._on_device():  # TensorRT objects are freed on the device they live on
            self._graphs.clear()
            self._context = None
            self._engine = None
        if getattr(self, "mem", None) is not None:
            self.mem.close()

    def _enqueue(self, n: int) -> None:
        """Run the engine on the first ``n`` rows of the device input (async on the stream)."""
        s = self.image_size
        self._context.set_input_shape(self.input_name, (n, 3, s, s))
        if not self.cuda_graphs:
            if not self._context.execute_async_v3(self.mem.stream_handle):
                raise RuntimeError(f"{self.path}: TensorRT execution failed")
            return
        import torch

        # Capture and replay on the runner's stream (and device): replay() launches on torch's
        # *current* stream, which must be the one the input/output copies are ordered on.
        with torch.cuda.device(self._index), torch.cuda.stream(self.mem.stream):
            graph = self._graphs.get(n)
            if graph is None:
                # One plain run first: TensorRT does shape-dependent work outside the graph.
                self._context.execute_async_v3(self.mem.stream_handle)
                self.mem.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self.mem.stream):
                    self._context.execute_async_v3(self.mem.stream_handle)
                self._graphs[n] = graph
            graph.replay()

    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        padded = max(n, self.min_batch)  # below the profile's minimum: pad, drop the extra rows
        self._h_in[:n] = x
        if padded > n:
            self._h_in[n:padded] = 0
        self.mem.to_device(self._d_in, self._h_in[:padded])
        self._enqueue(padded)
        self.mem.to_host(self._h_out[:padded], self._d_out)
        self.mem.synchronize()
        return self._h_out[:n].astype(np.float32, copy=True)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._context is None:
            raise RuntimeError("runner not activated: use it as a context manager")
        s = self.image_size
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s):
            raise ValueError(f"expected a batch of 3 x {s} x {s} images, got shape {batch.shape}")
        with self._on_device():
            slices = batch_slices(batch.shape[0], self.max_batch)
            outs = [self._run_chunk(batch[sl]) for sl in slices]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 BGR frames in and out. With torch buffers the conversion to/from [-1, 1] RGB
        NCHW runs on the GPU, straight into the engine's input buffer; otherwise on the CPU."""
        if not isinstance(self.mem, TorchCudaMemory):
            return super().infer_frames(frames)
        import torch

        from p2p_deploy.imaging import torch_bgr8_to_tensor, torch_tensor_to_bgr8

        s = self.image_size
        tdt = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}
        in_t, out_t = tdt[self._in_dtype], tdt[self._out_dtype]
        outs = []
        for sl in batch_slices(frames.shape[0], self.max_batch):
            chunk = np.ascontiguousarray(frames[sl])
            n = chunk.shape[0]
            padded = max(n, self.min_batch)
            with torch.cuda.device(self._index), torch.cuda.stream(self.mem.stream):
                f = torch.from_numpy(chunk).pin_memory().to(self.mem.device, non_blocking=True)
                d_in = self._d_in.handle.view(in_t)[: padded * 3 * s * s].view(padded, 3, s, s)
                d_in[:n].copy_(torch_bgr8_to_tensor(f, in_t))
                if padded > n:
                    d_in[n:].zero_()
                self._enqueue(padded)
                d_out = self._d_out.handle.view(out_t)[: n * 3 * s * s].view(n, 3, s, s)
                outs.append(torch_tensor_to_bgr8(d_out).cpu().numpy())  # .cpu() waits on the stream
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def describe(self) -> str:
        return f"{self.backend} {self.precision} on {self.device} (test-norm {self.test_norm})"
