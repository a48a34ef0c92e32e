"""PyTorch runner: a generator checkpoint run eagerly (or compiled / CUDA-graphed).

CPU: fp32. CUDA: fp16 and channels-last by default, cudnn.benchmark on, optional CUDA graphs
(one per batch size, captured on first use) or torch.compile. Always under ``inference_mode``.
An fp32 runner computes in fp32: cuDNN's TF32 convolutions (on by default in PyTorch,
``torch.backends.cudnn.allow_tf32``) are off during its calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from p2p_deploy.errors import P2PError
from p2p_deploy.imaging import torch_bgr8_to_tensor, torch_tensor_to_bgr8
from p2p_deploy.models.card import TEST_NORMS
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.opening import ModelFile
from p2p_deploy.runners.base import DeviceStep, Runner

log = logging.getLogger(__name__)


class TorchRunner(Runner):
    """Runs a checkpoint (run folder, ``.safetensors`` or canonical ``latest_net_G.pth``).

    Args:
        model: the checkpoint, opened (:func:`~p2p_deploy.models.opening.open_model`) or a path.
        device: ``cpu`` (default when no CUDA), ``cuda`` or ``cuda:N``.
        precision: ``fp32`` or ``fp16`` (fp16 needs CUDA; default fp16 on CUDA, fp32 on CPU).
        test_norm: ``stats`` or ``running``; default from the checkpoint's norm.
        channels_last: NHWC memory format (default on CUDA).
        cuda_graphs: capture one CUDA graph per batch size (CUDA only).
        compile: wrap the model in ``torch.compile``.
        max_batch: split larger batches (None: no limit).
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
        card = self.model.card
        self.test_norm = test_norm or card.test_norm
        self.channels_last = cuda if channels_last is None else channels_last
        self.cuda_graphs = cuda_graphs and cuda
        self.compile = compile
        self.max_batch = max_batch
        self.config: GeneratorConfig = card.generator
        self.image_size = card.image_size
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self._model: torch.nn.Module | None = None
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _activate(self) -> None:
        assert self.model is not None
        model = prepare_generator(self.model.generator(), self.test_norm)
        model = model.to(self._dev, dtype=self._dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self._dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest
        if self.compile:
            model = torch.compile(model)
        self._model = model
        log.debug("torch runner: %s", self.describe())

    def _close(self) -> None:
        self._model = None
        self._graphs.clear()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._dev, dtype=self._dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _graph_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Replay (capturing on first use) the CUDA graph for this batch size. Each graph owns
        its static input/output (torch's "whole network capture" recipe), so graphs of
        different batch sizes never share buffers."""
        n = x.shape[0]
        # On the runner's device (cuda:N), not the current one: the side stream, the capture's
        # internal stream and the replay all follow the current device.
        with torch.cuda.device(self._dev):
            if n not in self._graphs:
                static_in = torch.empty_like(x)
                static_in.copy_(x)
                side = torch.cuda.Stream(device=self._dev)
                side.wait_stream(torch.cuda.current_stream(self._dev))
                with torch.cuda.stream(side):  # warm-up outside the graph, as torch's docs say
                    for _ in range(3):
                        self._model(static_in)
                torch.cuda.current_stream(self._dev).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: another thread's CUDA call (the bench's memory sampler) must
                # not invalidate the capture (see tensorrt_runner.CAPTURE_ERROR_MODE).
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    static_out = self._model(static_in)
                self._graphs[n] = (graph, static_in, static_out)
            graph, static_in, static_out = self._graphs[n]
            static_in.copy_(x)
            graph.replay()
        return static_out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) tensor in [-1, 1] on any device -> (n, 3, S, S) on :attr:`device` in
        the runner's dtype; no host copies of the result."""
        x = self._prepare(x)
        with torch.inference_mode(), _no_tf32(self.precision == "fp32"):
            if self.cuda_graphs:
                return self._graph_forward(x)
            return self._model(x)

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(torch.from_numpy(batch)).float().cpu().numpy()

    def _infer_frames_chunk(self, frames: np.ndarray) -> np.ndarray:
        """Conversion on the runner's device (the GPU on CUDA): one uint8 upload and download."""
        f = torch.from_numpy(np.ascontiguousarray(frames)).to(self._dev, non_blocking=True)
        with torch.inference_mode():
            x = torch_bgr8_to_tensor(f, self._dtype)
            y = self._finite(self._forward(x))  # NaN never becomes a black frame
            return torch_tensor_to_bgr8(y).cpu().numpy()

    def device_step(self, batch: np.ndarray) -> DeviceStep | None:
        """On CUDA: the model on ``batch`` already on the GPU, on torch's current stream of the
        runner's device (where :meth:`_forward` enqueues its kernels)."""
        self._check_active()
        if self._dev.type != "cuda":
            return None
        x = self._prepare(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return DeviceStep(lambda: self._forward(x), torch.cuda.current_stream(self._dev))

    def _describe_extras(self) -> list[str]:
        extras = super()._describe_extras()
        if self.channels_last:
            extras.append("channels-last")
        if self.cuda_graphs:
            extras.append("cuda-graphs")
        if self.compile:
            extras.append("compiled")
        return extras


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
