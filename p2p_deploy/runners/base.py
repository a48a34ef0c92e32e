"""The contract every backend implements, in the spirit of Polygraphy's runners.

A runner is built from a path, used as a context manager (``__enter__`` loads the model and
allocates buffers; ``__exit__`` frees them), and translates batches with :meth:`Runner.infer`.
As in Polygraphy's ``BaseRunner.infer`` -> ``infer_impl``, the base class owns the contract
(activation, dtype and shape checks, splitting a batch into the runner's limits, padding a
batch up to the model's smallest accepted batch) and each backend implements one
:meth:`Runner._infer_chunk` that sees only batches it can take. The conformance test in
``tests/runtime/test_runners.py`` runs every available runner against eager torch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from p2p_deploy.errors import EngineMismatch, P2PError
from p2p_deploy.models.spatial import SizeRange

if TYPE_CHECKING:
    from p2p_deploy.models.opening import ModelFile


class BatchError(P2PError, ValueError):
    """A batch of the wrong dtype or shape (a ValueError too, for callers that catch those)."""


@dataclass(frozen=True)
class DeviceStep:
    """The model alone on data already on the device, for CUDA-event timing (bench).

    Attributes:
        run: enqueues one model execution (no host copies); may return before the GPU is done.
        stream: the ``torch.cuda.Stream`` ``run`` enqueues on: events recorded on it bracket
            exactly the model's kernels.
    """

    run: Callable[[], Any]
    stream: Any


class Pending:
    """A batch in translation: :meth:`result` waits for it (once) and returns its output."""

    def __init__(self, fetch: Callable[[], np.ndarray]) -> None:
        self._fetch: Callable[[], np.ndarray] | None = fetch
        self._out: np.ndarray | None = None

    def result(self) -> np.ndarray:
        if self._fetch is not None:
            self._out, self._fetch = self._fetch(), None
        assert self._out is not None
        return self._out

    @property
    def fetched(self) -> bool:
        return self._fetch is None


class Runner(abc.ABC):
    """Base class of all runners.

    Contract of :meth:`infer`:
        input:  (N, 3, H, W) float32 numpy, RGB in [-1, 1], any N >= 1, (H, W) a size the model
            takes (:attr:`size_range`: S x S, S = :attr:`image_size`, for a fixed-square
            model; multiples of the stride ``2**n_down`` within its limits for a fully
            convolutional one).
        output: (N, 3, H, W) float32 numpy, RGB in [-1, 1], row i computed from input row i only.
    Contract of :meth:`infer_frames`:
        input:  (N, H, W, 3) uint8 numpy, OpenCV BGR; output the same shape and dtype.
    One call holds frames of one size; a new size may compile or capture (once per shape).

    Attributes (all set here; subclasses refine them in ``__init__`` or :meth:`_activate`):
        backend: ``torch``, ``onnxruntime``, ``tensorrt``, ... (class attribute).
        model: the :class:`~p2p_deploy.models.opening.ModelFile` (file read once, and its
            card); None for runners that wrap no file.
        path: the model file or folder as given.
        device: ``cpu``, ``cuda:0``, ...
        precision: ``fp32`` or ``fp16``, as read from the model, not assumed.
        image_size: S, the generator's own (training) size.
        sizes: the (H, W) the model takes (a :class:`~p2p_deploy.models.spatial.SizeRange`);
            None: exactly S x S. Read it through :attr:`size_range`.
        test_norm: ``stats``, ``running`` or ``unknown`` (what the model was exported with).
        min_batch: the smallest batch one model call takes; smaller chunks are zero-padded up to
            it and the padded rows dropped (a static batch axis: min_batch == max_batch).
        max_batch: the largest batch one model call takes (None: unbounded); larger batches are
            split into consecutive chunks.
        frames_in_flight: batches :meth:`submit_frames` may have pending at once (1: it
            translates before returning; 2: GPU runners, double-buffered).
        is_active: between :meth:`activate` and :meth:`close`.
    """

    backend: ClassVar[str] = "base"

    def __init__(self, model: ModelFile | str | Path | None = None, device: str = "cpu") -> None:
        """``model``: an opened :class:`ModelFile` (as ``runners.factory.open_runner`` passes
        it), or a path, opened here with :func:`~p2p_deploy.models.opening.open_model`."""
        from p2p_deploy.models.opening import as_model

        self.model: ModelFile | None = as_model(model) if model is not None else None
        self.path: Path | None = self.model.path if self.model is not None else None
        self.device = device
        self.precision = "fp32"
        self.image_size = 256
        self.sizes: SizeRange | None = None
        self.test_norm = "unknown"
        self.min_batch = 1
        self.max_batch: int | None = None
        self.frames_in_flight = 1
        self.is_active = False

    @property
    def size_range(self) -> SizeRange:
        """The frame sizes this runner takes (:attr:`sizes`, else exactly S x S)."""
        return self.sizes or SizeRange.square(self.image_size)

    def warm_size(self) -> tuple[int, int]:
        """The size :meth:`warmup` runs: S x S when the model takes it, else its smallest."""
        r = self.size_range
        s = (self.image_size, self.image_size)
        return s if r.accepts(s) else r.min

    # -- lifetime -------------------------------------------------------------------------

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

    def activate(self) -> None:
        """Load the model and allocate buffers (called by ``__enter__``). A failure part-way
        frees what was allocated (``__exit__`` does not run when ``__enter__`` raises)."""
        if self.is_active:
            raise RuntimeError(f"{self.describe()}: already active")
        try:
            self._activate()
        except BaseException:
            self._close()
            raise
        self.is_active = True

    def close(self) -> None:
        """Free what :meth:`activate` allocated (called by ``__exit__``); safe to repeat."""
        try:
            self._close()
        finally:
            self.is_active = False

    def _activate(self) -> None:  # noqa: B027 - optional hook: nothing to load by default
        """Backend part of :meth:`activate`."""

    def _close(self) -> None:  # noqa: B027 - optional hook: nothing to free by default
        """Backend part of :meth:`close`; must tolerate a half-done :meth:`_activate`."""

    # -- inference ------------------------------------------------------------------------

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Translate a batch; see the class docstring for the contract.

        Raises:
            RuntimeError: the runner is not active (use it as a context manager).
            BatchError: ``batch`` is not (N, 3, H, W) float32 of a size the model takes.
        """
        self._check_active()
        row = check_images(batch, self.size_range, np.float32, channels_last=False)
        out = self._split_and_pad(batch, self._infer_chunk, row)
        return np.ascontiguousarray(out, dtype=np.float32)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """Translate OpenCV frames: (N, H, W, 3) uint8 BGR -> (N, H, W, 3) uint8 BGR.

        Raises:
            RuntimeError: the runner is not active.
            BatchError: ``frames`` is not (N, H, W, 3) uint8 of a size the model takes.
        """
        return self.submit_frames(frames).result()

    def submit_frames(self, frames: np.ndarray) -> Pending:
        """Start translating ``frames`` (as :meth:`infer_frames`) and return at once where the
        runner can work asynchronously (a GPU runner: the frames are copied into pinned memory
        and the upload, model and download are queued on its stream); ``Pending.result()``
        waits for the (N, H, W, 3) uint8 output. Up to :attr:`frames_in_flight` batches may be
        pending: the caller fills the next batch while the device works on the last one.
        Results are taken in submission order; submitting more makes the runner wait for the
        oldest first. Runners without such a path translate before returning.

        Raises:
            RuntimeError: the runner is not active.
            BatchError: ``frames`` is not (N, H, W, 3) uint8 of a size the model takes.
        """
        self._check_active()
        row = check_images(frames, self.size_range, np.uint8, channels_last=True)
        parts = []
        for sl in batch_slices(frames.shape[0], self.max_batch):
            chunk = frames[sl]
            pending = self._submit_frames_chunk(pad_rows(chunk, self.min_batch))
            parts.append((chunk.shape[0], pending))

        def collect() -> np.ndarray:
            outs = []
            for n, pending in parts:
                outs.append(first_rows(pending.result(), n, row, self.path))
            return outs[0] if len(outs) == 1 else np.concatenate(outs)

        return Pending(collect)

    @abc.abstractmethod
    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        """One model call: (n, 3, H, W) float32 with min_batch <= n <= max_batch and (H, W) in
        :attr:`size_range` -> (n, 3, H, W) float (any float dtype; :meth:`infer` makes it
        float32)."""

    def _submit_frames_chunk(self, frames: np.ndarray) -> Pending:
        """One model call on frames: (n, H, W, 3) uint8 BGR -> the same, min_batch <= n <=
        max_batch. The default converts on the CPU with :mod:`p2p_deploy.imaging` and
        translates before returning; GPU runners override it to upload uint8 from pinned
        memory, convert on the device and return while the device works."""
        from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8

        out = tensor_to_bgr8(self._finite(self._infer_chunk(bgr8_to_tensor(frames))))
        return Pending(lambda: out)

    def _finite(self, y: Any) -> Any:
        """``y`` itself (a numpy array or a torch tensor); a model output holding NaN or inf
        (broken weights, an fp16 overflow) is an error naming the model: converted to frames it
        would be a black image written with exit 0. (:meth:`infer` returns floats as they are:
        a caller such as bench or eval sees the NaN and says so itself.)"""
        finite = np.isfinite(y).all() if isinstance(y, np.ndarray) else y.isfinite().all()
        if not bool(finite):
            raise self._not_finite()
        return y

    def _not_finite(self) -> EngineMismatch:
        """The one-line error for a model output holding NaN or inf."""
        return EngineMismatch(
            f"{self.path}: the model's output holds NaN or inf (broken weights, or an fp16 "
            "overflow); nothing was written from it."
        )

    def _split_and_pad(
        self, x: np.ndarray, call: Callable[[np.ndarray], np.ndarray], row: tuple[int, ...]
    ) -> np.ndarray:
        outs = []
        for sl in batch_slices(x.shape[0], self.max_batch):
            chunk = x[sl]
            n = chunk.shape[0]
            outs.append(first_rows(call(pad_rows(chunk, self.min_batch)), n, row, self.path))
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def _check_active(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.describe()}: not activated; use it as a context manager")

    def warmup(self, batch: int | None = None, size: tuple[int, int] | None = None) -> float:
        """Translate one batch of black frames before the first real one (GPU runners
        autotune, capture CUDA graphs or compile then, all per shape); returns its seconds.

        ``batch``: the batch size the run will submit (default :attr:`min_batch`), kept within
        ``min_batch..max_batch``; ``size``: the frames' (height, width) (default
        :meth:`warm_size`). Warming another shape than the run's would leave the autotuning
        and capture of the run's own shape inside the run."""
        import time

        self._check_active()
        h, w = size or self.warm_size()
        n = max(batch or self.min_batch, self.min_batch)
        if self.max_batch:
            n = min(n, self.max_batch)
        t = time.perf_counter()
        self.infer_frames(np.zeros((n, h, w, 3), np.uint8))
        return time.perf_counter() - t

    # -- optional hooks for tools ---------------------------------------------------------

    def device_step(self, batch: np.ndarray) -> DeviceStep | None:
        """The model alone on ``batch`` already uploaded to the device, for CUDA-event timing.

        ``batch``: (n, 3, H, W) float32, n <= max_batch. Returns None when the runner has no
        device-side step (CPU runners; ONNX Runtime, whose session does its own copies); the
        bench then reports end-to-end time only. Needs an active runner.
        """
        return None

    def frames_device_step(self, frames: np.ndarray) -> DeviceStep | None:
        """What :meth:`submit_frames` runs on the device (conversions and model) on ``frames``
        ((n, S, S, 3) uint8) already uploaded, for CUDA-event timing; None where the runner has
        no such step (then :meth:`device_step` times the model alone). ``frames``: (n, H, W, 3)."""
        return None

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``onnxruntime fp32 on cpu (test-norm stats)``."""
        extras = ", ".join(self._describe_extras())
        return f"{self.backend} {self.precision} on {self.device}" + (
            f" ({extras})" if extras else ""
        )

    def _describe_extras(self) -> list[str]:
        return [f"test-norm {self.test_norm}"]


def check_images(x: Any, sizes: SizeRange, dtype: type, channels_last: bool) -> tuple[int, ...]:
    """Raise :class:`BatchError` unless ``x`` is an (N >= 1, 3, H, W) (``channels_last``:
    (N, H, W, 3)) numpy array of ``dtype`` whose (H, W) ``sizes`` accepts; returns its row
    shape (``x.shape[1:]``)."""
    if channels_last:
        want = "frames of H x W x 3 uint8 (BGR)" if dtype == np.uint8 else "H x W x 3 frames"
    else:
        want = f"a batch of 3 x H x W {np.dtype(dtype).name} images"
    if sizes.fixed:
        h, w = sizes.min
        want = want.replace("H x W", f"{h} x {w}")
    if not isinstance(x, np.ndarray):
        raise BatchError(f"expected {want} as a numpy array, got {type(x).__name__}")
    c_axis = 3 if channels_last else 1
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[c_axis] != 3:
        raise BatchError(f"expected {want}, got shape {tuple(x.shape)}")
    hw = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
    if not sizes.accepts(hw):
        detail = "" if sizes.fixed else f": {sizes.refusal(hw)}"
        raise BatchError(f"expected {want}, got shape {tuple(x.shape)}{detail}")
    if x.dtype != dtype:
        raise BatchError(f"expected {want}, got dtype {x.dtype}")
    return tuple(x.shape[1:])


def check_array(x: Any, row: tuple[int, ...], dtype: type, what: str) -> None:
    """Raise :class:`BatchError` unless ``x`` is an (N >= 1, *row) numpy array of ``dtype``.
    ``what`` describes the expectation; ``{s}`` in it is replaced by ``row``'s image size."""
    want = what.format(s=max(row))
    if not isinstance(x, np.ndarray):
        raise BatchError(f"expected {want} as a numpy array, got {type(x).__name__}")
    if x.ndim != len(row) + 1 or tuple(x.shape[1:]) != row or x.shape[0] < 1:
        raise BatchError(f"expected {want}, got shape {tuple(x.shape)}")
    if x.dtype != dtype:
        raise BatchError(f"expected {want}, got dtype {x.dtype}")


def batch_slices(n: int, max_batch: int | None) -> list[slice]:
    """Slices that cut ``n`` rows into consecutive chunks of at most ``max_batch`` rows."""
    if not max_batch or n <= max_batch:
        return [slice(0, n)]
    return [slice(i, min(i + max_batch, n)) for i in range(0, n, max_batch)]


def first_rows(y: np.ndarray, n: int, row: tuple[int, ...], where: object) -> np.ndarray:
    """The first ``n`` rows of a chunk's output (the rest is padding), checked to be rows of
    ``row``; a foreign model's other shape is one line naming ``where`` (its path)."""
    if y.shape[1:] != row or y.shape[0] < n:
        raise EngineMismatch(
            f"{where}: the model returned shape {tuple(y.shape)} for a batch of {n} x {row}; it "
            "is not a pix2pix generator of this size."
        )
    return y[:n]


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    """``x`` with zero rows appended up to ``rows`` rows (``x`` itself when it has enough)."""
    pad = rows - x.shape[0]
    if pad <= 0:
        return x
    return np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
