"""`p2p doctor`: what this machine can run, one line each.

Only typer and the standard library at import time; each probe imports its package itself.
"""

from __future__ import annotations

import typer

GPU_EXTRA = 'pip install "p2p-deploy[gpu]"'


def _torch() -> list[str]:
    try:
        import torch
    except ImportError:
        return [
            "torch: not installed (training, export and the PyTorch runner need it: "
            'pip install "p2p-deploy[train]"; running exported models does not)'
        ]
    line = f"torch: {torch.__version__}"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        cuda = f"CUDA {torch.version.cuda}: " + ", ".join(names)
    else:
        cuda = "CUDA: no GPU visible" + ("" if torch.version.cuda else " (CPU-only build of torch)")
    return [line, cuda]


def _onnxruntime() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return ['onnxruntime: not installed (pip install "p2p-deploy[cpu]", or [gpu] for CUDA)']
    return [
        f"onnxruntime: {ort.__version__}, providers: {', '.join(ort.get_available_providers())}"
    ]


def _openvino() -> list[str]:
    try:
        import openvino as ov
    except ImportError:
        return ['openvino: not installed (pip install "p2p-deploy[openvino]": fastest CPU path)']
    try:
        caps = [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not raised
        return [f"openvino: {ov.__version__}, CPU plugin fails ({str(exc).splitlines()[0][:120]})"]
    return [f"openvino: {ov.__version__}, CPU {', '.join(caps)}"]


def _tensorrt() -> list[str]:
    from p2p_deploy.errors import first_line

    try:
        import tensorrt as trt
    except ImportError:
        return [f"tensorrt: not installed ({GPU_EXTRA}); .plan engines cannot run here"]
    except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) is reported
        return [f"tensorrt: installed but fails to import ({first_line(exc)})"]
    line = f"tensorrt: {trt.__version__}"
    if not str(trt.__version__).startswith("10."):
        # onnxruntime-gpu's TensorRT provider links libnvinfer.so.10 (README, TensorRT extras).
        line += " (onnxruntime's TensorRT provider needs TensorRT 10: it uses CUDA instead)"
    return [line]


def _pycuda() -> list[str]:
    try:
        import pycuda
    except ImportError:
        return [
            'pycuda: not installed (pip install "p2p-deploy[pycuda]", builds with the CUDA '
            "toolkit; only needed to run TensorRT without torch CUDA)"
        ]
    return [f"pycuda: {getattr(pycuda, 'VERSION_TEXT', 'installed')}"]


def _opencv() -> list[str]:
    import cv2

    from p2p_deploy.media.video import working_codecs

    codecs = working_codecs()
    ok = [c for c, works in codecs.items() if works]
    bad = [c for c, works in codecs.items() if not works]
    return [
        f"opencv: {cv2.__version__}",
        f"video codecs that write here: {', '.join(ok) or 'none'}"
        + (f"; not available: {', '.join(bad)}" if bad else ""),
    ]


def doctor_lines() -> list[str]:
    """Every line of the report, in order."""
    import platform

    lines = [f"python: {platform.python_version()} on {platform.system()} {platform.machine()}"]
    for probe in (_torch, _onnxruntime, _openvino, _tensorrt, _pycuda, _opencv):
        lines.extend(probe())
    return lines


def register(app: typer.Typer) -> None:
    from p2p_deploy.cli.usage import PlainUsageCommand

    @app.command("doctor", cls=PlainUsageCommand)
    def doctor() -> None:
        """Report what this machine can run: torch and CUDA GPUs, onnxruntime providers,
        TensorRT, pycuda, OpenCV and the video codecs that really open for writing (each is
        tried with a tiny write into a temporary folder)."""
        from p2p_deploy.media.video import quiet_native_logs

        # FFmpeg prints its own errors while codecs are probed; the report says it in one line.
        quiet_native_logs()
        for line in doctor_lines():
            typer.echo(line)
