"""Optional heavy dependencies, imported only by the code that needs them.

A missing package gives one sentence naming the extra to install, never a traceback.

torch is one of them: running exported models (``p2p run`` on ONNX / OpenVINO / TensorRT,
``p2p bench --onnx``, ``p2p doctor``) needs no torch, so a deploy install
(``pip install "p2p-deploy[cpu]"``) has none; training, export and the PyTorch runner need the
``train`` extra (:func:`require_train`).
"""

from __future__ import annotations

import importlib
import importlib.util
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
    "torch": ("train", "training, export and the PyTorch runner"),
    "safetensors": ("train", "generator checkpoints"),
    "onnxscript": ("train", "the ONNX export"),
    "tensorboard": ("train", "training logs"),
}

TRAIN_HINT = 'pip install "p2p-deploy[train]" (torch first: README, Install)'
# What training and export import beyond a deploy install (the ``train`` extra).
TRAIN_MODULES: tuple[str, ...] = ("torch", "safetensors", "onnx", "onnxscript")


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


def require_train(what: str, modules: tuple[str, ...] = TRAIN_MODULES) -> None:
    """Raise :class:`MissingDependency` in one sentence when ``what`` (``p2p export``, "the
    PyTorch runner"...) cannot run for want of the ``train`` extra's packages.

    Looks the packages up without importing them (``importlib.util.find_spec``), so calling
    it before a command's real work costs nothing.
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
        raise MissingDependency(
            f"{what} needs {names}, not installed here (a deploy install runs exported "
            f"models only): {TRAIN_HINT}."
        )


def available(name: str) -> bool:
    """True when ``name`` imports (any import error counts as absent)."""
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install is as good as a missing one here
        return False
    return True
