"""Opening the right runner for a model path: by extension, or as forced by ``backend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2p_deploy.devices import parse_device
from p2p_deploy.errors import P2PError
from p2p_deploy.runners.base import Runner

BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "onnxruntime", "torch")
ENGINE_EXTS = (".plan", ".engine")
ONNX_EXTS = (".onnx",)
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
    """``tensorrt`` for .plan/.engine, ``onnxruntime`` for .onnx, ``torch`` for a run folder,
    .safetensors or .pth.

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
    raise P2PError(
        f"{p}: unknown model type (expected .plan/.engine for TensorRT, .onnx for ONNX Runtime, "
        "or a run folder / .safetensors / .pth for PyTorch)."
    )


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
    if backend != "auto" and backend != kind:
        raise P2PError(f"{model_path}: a {kind} model cannot run on the {backend} backend.")
    if kind == "tensorrt":
        from p2p_deploy.runners.tensorrt_runner import TensorRTRunner as cls
    elif kind == "onnxruntime":
        from p2p_deploy.runners.onnxruntime_runner import OnnxRuntimeRunner as cls
    else:
        from p2p_deploy.runners.torch_runner import TorchRunner as cls
    try:
        return cls(model_path, device=device, **options)
    except TypeError as exc:
        raise P2PError(f"{model_path}: unsupported option for the {kind} runner ({exc}).") from None
