"""Opening the right runner for a model: by its kind, or as forced by ``backend``.

``auto`` on the CPU runs an ONNX model (fp32 or the INT8 QDQ graph) on OpenVINO when it is
installed (``pip install "p2p-deploy[openvino]"``): the faster CPU path, and the only one that
runs the INT8 graph's convolutions in int8. fp16 ONNX models (made for GPUs) stay on ONNX
Runtime, and so does everything when ONNX Runtime has a CUDA provider and no device is forced.

Models are read by :func:`p2p_deploy.models.opening.open_model` (once); every function here takes
the :class:`ModelFile` it returns, or a path (then opened here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2p_deploy.devices import parse_device
from p2p_deploy.errors import P2PError
from p2p_deploy.models.opening import ModelFile, as_model
from p2p_deploy.runners.base import Runner

BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
# Which files (by their native backend, ModelFile.backend) each backend reads.
READS: dict[str, tuple[str, ...]] = {
    "tensorrt": ("tensorrt",),
    "onnxruntime": ("onnxruntime",),
    "openvino": ("onnxruntime", "openvino"),
    "torch": ("torch",),
}
# What a file of each native backend is, in the words of the error that refuses it.
KINDS: dict[str, str] = {
    "tensorrt": "a TensorRT engine",
    "onnxruntime": "an ONNX model",
    "openvino": "an OpenVINO IR model",
    "torch": "a PyTorch checkpoint",
}


def check_device(device: str | None) -> None:
    """Accept None (the runner's default), ``cpu``, ``cuda`` or ``cuda:N``
    (:func:`p2p_deploy.devices.parse_device` without ``auto``).

    Raises:
        P2PError: anything else, in one sentence.
    """
    if device is not None:
        parse_device(device, allow_auto=False)


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def auto_backend(model: ModelFile, device: str | None = None) -> str:
    """The backend ``auto`` picks: the file's own (:attr:`ModelFile.backend`), except an fp32
    or INT8 .onnx on the CPU (``device`` cpu, or None with no CUDA provider in ONNX Runtime),
    which runs on OpenVINO when it is installed."""
    kind = model.backend
    if kind != "onnxruntime" or device not in (None, "cpu"):
        return kind
    from p2p_deploy.deps import available

    if not available("openvino") or model.precision == "fp16":
        return kind
    if device is None and _ort_has_cuda():
        return kind
    return "openvino"


def choose_backend(model: ModelFile, backend: str = "auto", device: str | None = None) -> str:
    """``backend`` checked against the model (an .onnx cannot run on torch), or the one
    ``auto`` picks (:func:`auto_backend`).

    Raises:
        P2PError: an unknown backend, or one that cannot read this model.
    """
    if backend not in BACKENDS:
        raise P2PError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "auto":
        return auto_backend(model, device)
    if model.backend not in READS[backend]:
        readers = ["auto", *(b for b, reads in READS.items() if model.backend in reads)]
        raise P2PError(
            f"{model.path}: {KINDS.get(model.backend, 'this model')} cannot run on the "
            f"{backend} backend; use --backend {', '.join(readers[:-1])} or {readers[-1]}."
        )
    if backend == "openvino" and device not in (None, "cpu"):
        # Said here, with the other choices that do not go together, before any work.
        raise P2PError(
            f"--device {device}: the openvino backend runs on the CPU; use --device cpu, or "
            "--backend onnxruntime or tensorrt for a GPU."
        )
    return backend


def open_runner(
    model: ModelFile | str | Path,
    backend: str = "auto",
    device: str | None = None,
    **options: Any,
) -> Runner:
    """Build (not yet activate) the runner for ``model``; use it as a context manager.

    ``model``: an opened :class:`ModelFile` (read once by the caller) or a path (opened here).
    ``backend`` must agree with the file type when given (an .onnx cannot run on torch).
    ``options`` go to the runner's constructor (e.g. ``precision``, ``test_norm``,
    ``cuda_graphs``, ``threads``, ``memory``); unknown ones raise P2PError.
    """
    check_device(device)
    if backend not in BACKENDS:
        raise P2PError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    model = as_model(model)
    backend = choose_backend(model, backend, device)
    kind = backend
    if kind == "tensorrt":
        from p2p_deploy.runners.tensorrt_runner import TensorRTRunner as cls
    elif kind == "openvino":
        from p2p_deploy.runners.openvino_runner import OpenVINORunner as cls
    elif kind == "onnxruntime":
        from p2p_deploy.runners.onnxruntime_runner import OnnxRuntimeRunner as cls
    else:
        from p2p_deploy.deps import require_train

        require_train("the PyTorch runner", ("torch",))
        from p2p_deploy.runners.torch_runner import TorchRunner as cls
    try:
        return cls(model, device=device, **options)
    except TypeError as exc:
        raise P2PError(f"{model.path}: unsupported option for the {kind} runner ({exc}).") from None
