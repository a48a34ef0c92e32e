"""The machine and software a benchmark number depends on.

Nothing here imports tensorrt (a broken TensorRT install must not stop a CPU benchmark):
versions of optional packages come from the installed distributions' metadata.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psutil

# The source checkout the code runs from, when it runs from one (an editable install): the
# repository's bench/ folder sits at its top level. An installed wheel has no such checkout, and
# nothing here then runs git or writes inside site-packages.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORTS = Path("p2p-bench")


def _version(*dists: str) -> str | None:
    for d in dists:
        try:
            return md.version(d)
        except md.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str:
    """The CPU's marketing name (``AMD EPYC 7763 64-Core Processor``), or the best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit(repo: Path = SOURCE_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout the code runs from.

    None for both when the code is not a git checkout (an installed wheel): git never runs
    inside site-packages.
    """
    if not (repo / ".git").exists():
        return {"commit": None, "dirty": None}
    sha = _run(["git", "rev-parse", "HEAD"], cwd=repo)
    if sha is None:
        return {"commit": None, "dirty": None}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    return {"commit": sha, "dirty": bool(status) if status is not None else None}


def gpu_info() -> dict[str, Any] | None:
    """GPU name, memory, compute capability, CUDA (torch's build), driver; None without CUDA.

    Without torch (a deploy install) the name and compute capability come from pycuda or
    cuda-python (:func:`p2p_deploy.gpu.gpu_identity`) and the figures only torch knows are null.
    """
    try:
        import torch
    except ImportError:
        return _gpu_info_without_torch()
    if not torch.cuda.is_available():
        return None
    idx = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(idx)
    driver = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return {
        "name": props.name,
        "count": torch.cuda.device_count(),
        "memory_gb": round(props.total_memory / 1024**3, 1),
        "compute_capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "driver": driver.splitlines()[0].strip() if driver else None,
    }


def _gpu_info_without_torch() -> dict[str, Any] | None:
    from p2p_deploy.gpu import gpu_identity

    name, cc = gpu_identity(0)
    if name is None:
        return None
    smi = _run(
        [
            "nvidia-smi",
            "--query-gpu=driver_version,memory.total",
            "--format=csv,noheader,nounits",
        ]
    )
    lines = smi.splitlines() if smi else []
    fields = [f.strip() for f in lines[0].split(",")] if lines else []
    try:
        memory_gb = round(float(fields[1]) / 1024, 1)  # MiB
    except (IndexError, ValueError):
        memory_gb = None
    return {
        "name": name,
        "count": len(lines) or None,
        "memory_gb": memory_gb,
        "compute_capability": cc,
        "cuda": None,  # torch's build; none here
        "cudnn": None,
        "driver": fields[0] if fields else None,
    }


def collect() -> dict[str, Any]:
    """Everything the report's environment section shows (JSON-serialisable)."""
    env: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu": {
            "model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "gpu": gpu_info(),
        "versions": {
            "p2p_deploy": _version("p2p-deploy"),
            "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
            "onnx": _version("onnx"),
            "tensorrt": _version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12"),
            "opencv": _version("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
            "numpy": _version("numpy"),
        },
        "git": git_commit(),
    }
    try:
        import torch
    except ImportError:  # a deploy install without torch
        env["torch_threads"] = None
    else:
        env["torch_threads"] = torch.get_num_threads()
    return env


def slugify(text: str) -> str:
    """Lower-case ASCII words joined by dashes: ``AMD EPYC 7763`` -> ``amd-epyc-7763``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_slug(env: dict[str, Any]) -> str:
    """A short folder name for the machine: GPU name, else CPU model, plus the core count.

    e.g. ``nvidia-h100-80gb-hbm3-16c`` or ``amd-epyc-2c``.
    """
    gpu = env.get("gpu")
    cpu = env.get("cpu", {})
    name = gpu["name"] if gpu else str(cpu.get("model") or "cpu")
    # Drop the marketing noise that makes folder names long.
    name = re.sub(r"\((r|tm)\)|cpu @.*|processor|\d+-core", "", name, flags=re.I)
    words = slugify(name).split("-")[:4]
    cores = cpu.get("usable_cores") or cpu.get("logical_cores") or 0
    return "-".join([w for w in words if w] + [f"{cores}c"])


def default_report_dir(env: dict[str, Any], root: Path | None = None) -> Path:
    """``<root>/<machine>-<YYYY-MM-DD>/``; ``root`` defaults to ``./p2p-bench`` under the
    current working folder (never inside the installed package)."""
    base = root if root is not None else Path.cwd() / DEFAULT_REPORTS
    return base / f"{machine_slug(env)}-{env['date'][:10]}"
