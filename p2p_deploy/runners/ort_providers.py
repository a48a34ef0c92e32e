"""ONNX Runtime's GPU execution providers: their options, and why one did not start.

* TensorRT provider: explicit optimisation-profile shapes (``trt_profile_min/opt/max_shapes``),
  or every batch size outside the range it last built for rebuilds its engine (minutes); its
  engine cache and its timing cache beside the model.
* CUDA provider: ``use_tf32`` off, so an fp32 model computes in fp32 (TF32 convolutions keep
  10 mantissa bits and would be fp32 in name only).
* ``InferenceSession`` falls back to the CPU *silently* when a requested provider fails to
  initialise (missing cuDNN or CUDA libraries, typically). :func:`provider_load_error` loads the
  provider's shared library the way ONNX Runtime does and returns the loader's own sentence
  ("libcudnn.so.9: cannot open shared object file"), so the error names what is missing.

Option names: ONNX Runtime's "TensorRT Execution Provider" and "CUDA Execution Provider" pages
(onnxruntime.ai/docs/execution-providers/).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import logging
import os
import sys
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

# Batch range of the TensorRT provider's profile when the card has none (the exporter's
# default TensorRT profile, 1:4:16).
DEFAULT_TRT_BATCH: tuple[int, int, int] = (1, 4, 16)

_PROVIDER_LIBS = {
    "CUDAExecutionProvider": "onnxruntime_providers_cuda",
    "TensorrtExecutionProvider": "onnxruntime_providers_tensorrt",
}


def trt_profile_options(
    input_name: str,
    channels: int,
    size: int,
    batch: tuple[int, int, int],
    spatial: tuple[tuple[int, int], ...] | None = None,
) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` for an (N, C, S, S) input with N in ``batch``:
    ``{"trt_profile_min_shapes": "input:1x3x256x256", ...}``; with ``spatial`` (the min, opt
    and max (H, W) of an export with dynamic height and width) over H and W too."""
    lo, opt, hi = batch
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"batch profile must be 1 <= min <= opt <= max, got {batch}")
    hws = spatial or ((size, size),) * 3

    def shape(n: int, hw: tuple[int, int]) -> str:
        return f"{input_name}:{n}x{channels}x{hw[0]}x{hw[1]}"

    return {
        "trt_profile_min_shapes": shape(lo, hws[0]),
        "trt_profile_opt_shapes": shape(opt, hws[1]),
        "trt_profile_max_shapes": shape(hi, hws[2]),
    }


def trt_provider_options(
    device_id: int,
    fp16: bool,
    cache_dir: Path,
    profile: dict[str, str],
) -> dict[str, object]:
    """The TensorRT provider's options: profile shapes, engine cache and timing cache in
    ``cache_dir`` (ORT keys its engines by model and GPU and rebuilds when either changes)."""
    return {
        "device_id": device_id,
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        **profile,
    }


def cuda_provider_options(device_id: int) -> dict[str, object]:
    """The CUDA provider's options: TF32 off (ORT's default is on for Ampere and newer)."""
    return {"device_id": device_id, "use_tf32": 0}


def _lib_name(stem: str) -> str:
    if sys.platform.startswith("win"):
        return f"{stem}.dll"
    return f"lib{stem}.so"


def provider_load_error(ort: ModuleType, provider: str) -> str:
    """Why ``provider`` cannot start, in one sentence, found by loading its shared library from
    ONNX Runtime's ``capi`` folder (after ``onnxruntime_providers_shared``, as ORT does).

    Returns the dynamic loader's message (names the missing library), a sentence saying the
    installed onnxruntime has no such provider, or, when the library loads, that the cause is
    elsewhere (no GPU visible, driver too old: ONNX Runtime's log says which).
    """
    stem = _PROVIDER_LIBS.get(provider)
    if stem is None:
        return f"{provider} did not start (see ONNX Runtime's log)"
    capi = Path(ort.__file__).parent / "capi"
    lib = capi / _lib_name(stem)
    if not lib.is_file():
        return (
            f"this onnxruntime ({getattr(ort, '__version__', '?')}) has no {lib.name}: it is "
            'the CPU-only package; install onnxruntime-gpu (pip install "p2p-deploy[gpu]")'
        )
    try:
        shared = capi / _lib_name("onnxruntime_providers_shared")
        if shared.is_file():
            ctypes.CDLL(str(shared), mode=getattr(os, "RTLD_GLOBAL", 0))
        ctypes.CDLL(str(lib))
    except OSError as exc:
        return f"{lib.name} cannot load: {str(exc).strip().splitlines()[0]}"
    return f"{lib.name} loads, but {provider} did not start (no GPU visible, or driver too old)"


def preload_gpu_libraries(ort: ModuleType, tensorrt: bool) -> None:
    """Load the CUDA, cuDNN (and TensorRT) libraries that pip installed before a GPU session.

    onnxruntime-gpu (1.19 and newer; CUDA 12 builds to 1.26, CUDA 13 from 1.27) finds
    libcublas/libcudnn only on the loader's path; pip puts them under
    ``site-packages/nvidia/``, which only an earlier ``import torch`` loads, or
    ``onnxruntime.preload_dlls()`` (ORT 1.21 and newer; ONNX Runtime's
    install page, "CUDA and cuDNN"). The runner does not import torch, so without this the CUDA
    provider fails to load on a pip-only box. The TensorRT provider needs ``libnvinfer``, which
    ``import tensorrt`` loads from the ``tensorrt_libs`` wheel. ``preload_dlls`` prints what it
    cannot load: those lines go to the debug log, not the user's terminal (the provider check
    after the session names what is missing in one sentence).
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                preload()
            except Exception as exc:  # noqa: BLE001 - best effort; the session says the rest
                log.debug("onnxruntime.preload_dlls failed: %s", exc)
        for line in out.getvalue().splitlines():
            log.debug("onnxruntime.preload_dlls: %s", line)
    if tensorrt:
        try:
            importlib.import_module("tensorrt")
        except Exception as exc:  # noqa: BLE001 - the provider check names the missing library
            log.debug("tensorrt not importable for the TensorRT provider: %s", exc)


# Options whose loss means ONNX Runtime rebuilt the session with its defaults (its fallback).
_CHECKED_OPTIONS = ("device_id", "use_tf32")


def options_lost(requested: list, active: dict[str, dict[str, str]]) -> list[str]:
    """``provider.option`` names whose value in the live session (``get_provider_options()``:
    strings) differs from what ``requested`` gave, for the providers that are active.

    onnxruntime before 1.23 ignores ``enable_fallback=0`` (1.19-1.22 set
    ``self._enable_fallback = True`` in ``InferenceSession.__init__`` and never read the
    argument; 1.23 reads it): a TensorRT provider failing at session creation silently rebuilds
    the session as ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` *with no options*
    (device 0, TF32 on). The CUDA provider's options read back from the session show it.
    """
    lost = []
    for p in requested:
        if isinstance(p, str) or p[0] not in active:
            continue
        name, opts = p
        for key in _CHECKED_OPTIONS:
            have = active[name].get(key)
            if key in opts and have is not None and str(have) != str(int(opts[key])):
                lost.append(f"{name}.{key}={have}")
    return lost


def without_provider(providers: list, name: str) -> list:
    """``providers`` (names or (name, options) pairs) without ``name``."""
    return [p for p in providers if (p if isinstance(p, str) else p[0]) != name]
