"""Opening the right runner for a model path: by extension, or as forced by ``backend``.

``auto`` on the CPU runs an ONNX model (fp32 or the INT8 QDQ graph) on OpenVINO when it is
installed (``pip install "p2p-deploy[openvino]"``): the faster CPU path, and the only one that
runs the INT8 graph's convolutions in int8. fp16 ONNX models (made for GPUs) stay on ONNX
Runtime, and so does everything when ONNX Runtime has a CUDA provider and no device is forced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2p_deploy.devices import parse_device
from p2p_deploy.errors import P2PError
from p2p_deploy.runners.base import Runner

BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
ENGINE_EXTS = (".plan", ".engine")
ONNX_EXTS = (".onnx",)
IR_EXTS = (".xml",)  # OpenVINO IR (its weights in the .bin beside it)
# Which file kinds (backend_for) each backend reads.
READS: dict[str, tuple[str, ...]] = {
    "tensorrt": ("tensorrt",),
    "onnxruntime": ("onnxruntime",),
    "openvino": ("onnxruntime", "openvino"),
    "torch": ("torch",),
}
CHECKPOINT_EXTS = (".safetensors", ".pth", ".pt")


def check_device(device: str | None) -> None:
    """Accept None (the runner's default), ``cpu``, ``cuda`` or ``cuda:N``
    (:func:`p2p_deploy.devices.parse_device` without ``auto``).

    Raises:
        P2PError: anything else, in one sentence.
    """
    if device is not None:
        parse_device(device, allow_auto=False)


def backend_for(model_path: str | Path) -> str:
    """``tensorrt`` for .plan/.engine, ``onnxruntime`` for .onnx, ``openvino`` for an IR .xml,
    ``torch`` for a run folder, .safetensors or .pth (the file's kind; ``auto`` may still run an
    .onnx on OpenVINO, see :func:`auto_backend`).

    Raises:
        P2PError: the path does not exist or is no known model type.
    """
    p = Path(model_path)
    if not p.exists():
        raise P2PError(f"{p}: no such model file or folder.")
    ext = p.suffix.lower()
    if p.is_dir() or ext in CHECKPOINT_EXTS:
        return "torch"
    if ext in ENGINE_EXTS:
        return "tensorrt"
    if ext in ONNX_EXTS:
        return "onnxruntime"
    if ext in IR_EXTS:
        return "openvino"
    raise P2PError(
        f"{p}: unknown model type (expected .plan/.engine for TensorRT, .onnx for ONNX Runtime, "
        ".xml for OpenVINO, or a run folder / .safetensors / .pth for PyTorch)."
    )


def _onnx_precision(model_path: Path) -> str | None:
    from p2p_deploy.sidecar import ModelSidecar, sidecar_for

    if sidecar_for(model_path).is_file():
        try:
            return ModelSidecar.read(model_path).precision
        except P2PError:
            return None
    from p2p_deploy.runners.onnxruntime_runner import graph_precision

    return graph_precision(model_path)


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def auto_backend(model_path: str | Path, device: str | None = None) -> str:
    """The backend ``auto`` picks: the file's kind (:func:`backend_for`), except an fp32 or
    INT8 .onnx on the CPU (``device`` cpu, or None with no CUDA provider in ONNX Runtime),
    which runs on OpenVINO when it is installed."""
    kind = backend_for(model_path)
    if kind != "onnxruntime" or device not in (None, "cpu"):
        return kind
    from p2p_deploy.deps import available

    if not available("openvino") or _onnx_precision(Path(model_path)) == "fp16":
        return kind
    if device is None and _ort_has_cuda():
        return kind
    return "openvino"


def open_runner(
    model_path: str | Path, backend: str = "auto", device: str | None = None, **options: Any
) -> Runner:
    """Build (not yet activate) the runner for ``model_path``; use it as a context manager.

    ``backend`` must agree with the file type when given (an .onnx cannot run on torch).
    ``options`` go to the runner's constructor (e.g. ``precision``, ``test_norm``,
    ``cuda_graphs``, ``threads``, ``memory``); unknown ones raise P2PError.
    """
    if backend not in BACKENDS:
        raise P2PError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    check_device(device)
    kind = backend_for(model_path)
    if backend == "auto":
        backend = auto_backend(model_path, device)
    elif kind not in READS[backend]:
        raise P2PError(f"{model_path}: a {kind} model cannot run on the {backend} backend.")
    kind = backend
    if kind == "tensorrt":
        from p2p_deploy.runners.tensorrt_runner import TensorRTRunner as cls
    elif kind == "openvino":
        from p2p_deploy.runners.openvino_runner import OpenVINORunner as cls
    elif kind == "onnxruntime":
        from p2p_deploy.runners.onnxruntime_runner import OnnxRuntimeRunner as cls
    else:
        from p2p_deploy.runners.torch_runner import TorchRunner as cls
    try:
        return cls(model_path, device=device, **options)
    except TypeError as exc:
        raise P2PError(f"{model_path}: unsupported option for the {kind} runner ({exc}).") from None
