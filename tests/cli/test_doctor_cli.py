"""`p2p doctor` reports this machine in one line per item, with codecs really probed."""

from __future__ import annotations

import subprocess
import sys

from p2p_deploy.cli import main
from p2p_deploy.media.video import PROBE_CODECS, codec_works


def test_doctor_lines(capsys) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    starts = [
        "python:",
        "torch:",
        "CUDA",
        "onnxruntime:",
        "openvino:",
        "tensorrt:",
        "pycuda:",
        "opencv:",
        "video codecs",
    ]
    assert [
        next(i for i, line in enumerate(lines) if line.startswith(s)) for s in starts
    ] == sorted(next(i for i, line in enumerate(lines) if line.startswith(s)) for s in starts)
    assert "CPUExecutionProvider" in out
    codecs = next(line for line in lines if line.startswith("video codecs"))
    works = codecs.split(";")[0].split(": ", 1)[1].split(", ")
    assert "mp4v" in works  # opencv-python's FFmpeg writes MPEG-4 part 2
    # What doctor prints is what really opens for writing here (H.264 depends on the build).
    for codec in PROBE_CODECS:
        assert (codec in works) == codec_works(codec), codec
        assert codec in codecs  # listed on one side or the other


def test_run_and_doctor_help_do_not_import_torch() -> None:
    code = (
        "import sys; from p2p_deploy.cli import main\n"
        "for cmd in ('run', 'doctor'):\n"
        "    try: main([cmd, '--help'])\n"
        "    except SystemExit: pass\n"
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--engine" in r.stdout and "--side-by-side" in r.stdout and "codecs" in r.stdout


def test_doctor_says_which_tensorrt_onnxruntime_can_use(monkeypatch) -> None:
    """TensorRT 11 installed (the gpu-trt11 extra): onnxruntime's TensorRT provider, which
    links libnvinfer.so.10, cannot use it; doctor says so on the tensorrt line."""
    from types import SimpleNamespace

    from p2p_deploy.cli.doctor import _tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace(__version__="11.4.0.106"))
    assert "needs TensorRT 10" in _tensorrt()[0]
    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace(__version__="10.13.3.9"))
    assert _tensorrt() == ["tensorrt: 10.13.3.9"]
