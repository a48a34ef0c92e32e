"""Optional heavy dependencies, imported only by the code that needs them.

A missing package gives one sentence naming the extra to install, never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from p2p_deploy.errors import MissingDependency

# package import name -> (pip extra, what it is for)
_EXTRAS: dict[str, tuple[str, str]] = {
    "tensorrt": ("gpu", "TensorRT engines"),
    "polygraphy": ("gpu", "building TensorRT engines"),
    # pycuda has no wheels: its extra builds it from source (needs the CUDA toolkit, nvcc).
    "pycuda": ("pycuda", "TensorRT buffers without torch"),
    "onnxruntime": ("cpu", "ONNX Runtime inference"),
    "openvino": ("openvino", "OpenVINO inference"),
    "tritonclient": ("triton", "Triton model-config checks"),
}


def require(name: str) -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependency` with the install command."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra, purpose = _EXTRAS.get(name.split(".")[0], ("", name))
        hint = f'pip install "p2p-deploy[{extra}]"' if extra else f"pip install {name}"
        raise MissingDependency(
            f"{name} is not installed ({purpose} need it): {hint} [{exc.__class__.__name__}: {exc}]"
        ) from None


def available(name: str) -> bool:
    """True when ``name`` imports (any import error counts as absent)."""
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install is as good as a missing one here
        return False
    return True
