"""ONNX Runtime GPU providers: profile and cache options, and a provider that cannot start
being an error that names what is missing (checked here with the CPU-only onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from p2p_deploy.errors import MissingDependency
from p2p_deploy.runners.factory import open_runner
from p2p_deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
from p2p_deploy.runners.ort_providers import (
    cuda_provider_options,
    provider_load_error,
    trt_profile_options,
    trt_provider_options,
)

CPU_ONLY = "CUDAExecutionProvider" not in ort.get_available_providers()


def test_trt_profile_shapes() -> None:
    opts = trt_profile_options("input", 3, 256, (1, 4, 16))
    assert opts == {
        "trt_profile_min_shapes": "input:1x3x256x256",
        "trt_profile_opt_shapes": "input:4x3x256x256",
        "trt_profile_max_shapes": "input:16x3x256x256",
    }
    with pytest.raises(ValueError, match="min <= opt <= max"):
        trt_profile_options("input", 3, 256, (4, 2, 8))


def test_trt_provider_has_profile_and_both_caches(tmp_path: Path) -> None:
    prof = trt_profile_options("input", 3, 32, (1, 2, 4))
    opts = trt_provider_options(1, True, tmp_path, prof)
    assert opts["device_id"] == 1 and opts["trt_fp16_enable"] is True
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"]
    assert opts["trt_engine_cache_path"] == opts["trt_timing_cache_path"] == str(tmp_path)
    assert opts["trt_profile_max_shapes"] == "input:4x3x32x32"
    assert cuda_provider_options(0) == {"device_id": 0, "use_tf32": 0}  # fp32 means fp32


def test_runner_profile_from_sidecar_or_default(tiny_onnx_fp32: Path, tmp_path: Path) -> None:
    runner = OnnxRuntimeRunner(tiny_onnx_fp32, device="cpu")
    assert runner.trt_batch == (1, 4, 16)  # an ONNX sidecar has no TensorRT profile
    assert OnnxRuntimeRunner(tiny_onnx_fp32, trt_batch=(2, 2, 8)).trt_batch == (2, 2, 8)


@pytest.mark.skipif(not CPU_ONLY, reason="needs the CPU-only onnxruntime package")
def test_cuda_asked_of_cpu_only_onnxruntime_names_what_is_missing(tiny_onnx_fp32: Path):
    reason = provider_load_error(ort, "CUDAExecutionProvider")
    assert "libonnxruntime_providers_cuda" in reason and "onnxruntime-gpu" in reason
    with pytest.raises(MissingDependency) as info:
        with open_runner(tiny_onnx_fp32, device="cuda"):
            pass  # pragma: no cover - never entered
    msg = str(info.value)
    assert "device cuda requested" in msg and "no CUDA provider" in msg
    assert "libonnxruntime_providers_cuda" in msg and "onnxruntime-gpu" in msg
    assert "\n" not in msg


def test_silent_cpu_fallback_is_an_error_when_cuda_was_asked(tiny_onnx_fp32: Path) -> None:
    """What ONNX Runtime does when the CUDA provider fails to start (cuDNN missing): the
    session comes up with the CPU provider only. With --device cuda that must not pass."""
    runner = OnnxRuntimeRunner(tiny_onnx_fp32, device="cuda")
    requested = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(MissingDependency, match=r"could not start its GPU provider \(CUDA"):
        runner._check_fallback(ort, requested, ["CPUExecutionProvider"])
    runner._check_fallback(ort, requested, requested)  # nothing dropped: fine
    auto = OnnxRuntimeRunner(tiny_onnx_fp32)  # default device: a warning, not an error
    auto._check_fallback(ort, requested, ["CPUExecutionProvider"])


def test_unknown_provider_reason() -> None:
    assert "see ONNX Runtime's log" in provider_load_error(ort, "MagicExecutionProvider")


# -- review: ONNX Runtime's own fallback is off; the TensorRT provider is retried without it --


class _TrtFailsOrt:
    """The real onnxruntime module, except that a session asked for the TensorRT provider
    raises, as ``InferenceSession`` does when that provider cannot build its engine (a
    RuntimeError from ``_create_inference_session``; ORT then retries *with no provider
    options* unless ``enable_fallback=0``: onnxruntime_inference_collection.py). Providers
    not in this (CPU-only) onnxruntime are dropped before the real session is made."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, dict]] = []

    def __getattr__(self, name: str):
        return getattr(ort, name)

    def InferenceSession(self, path, sess_options=None, providers=(), **kwargs):  # noqa: N802
        names = [p if isinstance(p, str) else p[0] for p in providers]
        self.calls.append((names, kwargs))
        if "TensorrtExecutionProvider" in names:
            raise RuntimeError("TensorRT EP failed to create engine from network.\nmore")
        have = ort.get_available_providers()
        keep = [p for p in providers if (p if isinstance(p, str) else p[0]) in have]
        return ort.InferenceSession(path, sess_options=sess_options, providers=keep, **kwargs)


def test_trt_provider_failure_is_retried_without_it_keeping_cuda_options(
    tiny_onnx_fp32: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _TrtFailsOrt()
    runner = OnnxRuntimeRunner(tiny_onnx_fp32)
    cuda = ("CUDAExecutionProvider", cuda_provider_options(0))
    trt = ("TensorrtExecutionProvider", {"device_id": 0})
    session = runner._create_session(
        fake, ort.SessionOptions(), [trt, cuda, "CPUExecutionProvider"]
    )
    assert [c[0] for c in fake.calls] == [
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ["CUDAExecutionProvider", "CPUExecutionProvider"],  # ours, with use_tf32 0
    ]
    assert all(c[1] == {"enable_fallback": 0} for c in fake.calls)
    assert runner._requested == [cuda, "CPUExecutionProvider"]
    assert "TensorRT provider failed (TensorRT EP failed to create engine" in caplog.text
    # run() must not switch providers behind the label either (ORT's private flag)
    assert session._enable_fallback is False


def test_real_session_has_fallback_off(tiny_onnx_fp32: Path) -> None:
    with OnnxRuntimeRunner(tiny_onnx_fp32, device="cpu") as runner:
        assert runner._session._enable_fallback is False


def test_trt_provider_profile_bounds_each_call(tiny_onnx_fp32: Path) -> None:
    runner = OnnxRuntimeRunner(tiny_onnx_fp32, trt_batch=(2, 4, 8))
    runner._limit_to_trt_profile()
    assert (runner.min_batch, runner.max_batch) == (2, 8)  # 1 image is padded to 2


def test_preload_is_quiet_and_harmless_on_cpu_onnxruntime(capsys: pytest.CaptureFixture) -> None:
    from p2p_deploy.runners.ort_providers import preload_gpu_libraries, without_provider

    preload_gpu_libraries(ort, tensorrt=True)  # tensorrt absent here: nothing raised
    assert capsys.readouterr().out == ""
    provs = [("TensorrtExecutionProvider", {}), "CPUExecutionProvider"]
    assert without_provider(provs, "TensorrtExecutionProvider") == ["CPUExecutionProvider"]


def test_fp32_on_trt_provider_is_said_to_use_tf32(
    tiny_onnx_fp32: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TensorRT's TF32 is on by default and ORT's TensorRT provider cannot clear it
    (microsoft/onnxruntime#26029): an fp32 model there is described as such, unless
    NVIDIA_TF32_OVERRIDE=0. Other providers and fp16 models are not."""
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    runner = OnnxRuntimeRunner(tiny_onnx_fp32)
    runner.provider = "TensorrtExecutionProvider"
    assert runner.tf32_convolutions() and "TF32 convolutions" in runner.describe()
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    assert not runner.tf32_convolutions()
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE")
    runner.provider = "CUDAExecutionProvider"  # use_tf32 0 there
    assert not runner.tf32_convolutions() and "TF32" not in runner.describe()


class _OldOrtFallsBack(_TrtFailsOrt):
    """onnxruntime 1.19-1.22: ``enable_fallback=0`` is ignored, so a TensorRT provider failing
    at session creation makes ``InferenceSession`` print "EP Error ..." on stdout and come up on
    ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` with the CUDA provider's *default*
    options (device 0, TF32 on: onnxruntime_inference_collection.py of 1.22.1,
    ``self._create_inference_session(self._fallback_providers, None)``)."""

    def InferenceSession(self, path, sess_options=None, providers=(), **kwargs):  # noqa: N802
        names = [p if isinstance(p, str) else p[0] for p in providers]
        self.calls.append((names, kwargs))
        cpu = ["CPUExecutionProvider"]
        real = ort.InferenceSession(path, sess_options=sess_options, providers=cpu)
        if "TensorrtExecutionProvider" in names:
            print("*************** EP Error ***************")
            print(f"EP Error TensorRT EP could not build the engine when using {names}")
            print("Falling back to ['CUDAExecutionProvider', 'CPUExecutionProvider'] and retrying.")
            options = {"CUDAExecutionProvider": {"device_id": "0", "use_tf32": "1"}}
        else:
            cuda = dict(next(p for p in providers if not isinstance(p, str))[1])
            options = {"CUDAExecutionProvider": {k: str(v) for k, v in cuda.items()}}
        real.get_provider_options = lambda: options  # what the live session reports
        return real


def test_old_onnxruntime_fallback_is_seen_and_redone_with_our_options(
    tiny_onnx_fp32: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    fake = _OldOrtFallsBack()
    runner = OnnxRuntimeRunner(tiny_onnx_fp32)
    cuda = ("CUDAExecutionProvider", cuda_provider_options(1))
    trt = ("TensorrtExecutionProvider", {"device_id": 1})
    session = runner._create_session(
        fake, ort.SessionOptions(), [trt, cuda, "CPUExecutionProvider"]
    )
    assert [c[0] for c in fake.calls] == [
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ["CUDAExecutionProvider", "CPUExecutionProvider"],  # ours: device 1, use_tf32 0
    ]
    assert session.get_provider_options()["CUDAExecutionProvider"]["use_tf32"] == "0"
    assert runner._requested == [cuda, "CPUExecutionProvider"]
    assert "TensorRT EP could not build the engine" in caplog.text
    assert "use_tf32=1" in caplog.text and "device_id=0" in caplog.text
    assert "EP Error" not in capsys.readouterr().out  # ORT's banner is not the user's


def test_options_lost_compares_only_active_providers() -> None:
    from p2p_deploy.runners.ort_providers import options_lost

    asked = [("CUDAExecutionProvider", cuda_provider_options(0)), "CPUExecutionProvider"]
    same = {"CUDAExecutionProvider": {"device_id": "0", "use_tf32": "0", "other": "x"}}
    assert options_lost(asked, same) == []
    assert options_lost(asked, {}) == []  # CUDA not active: _check_fallback's business
    tf32 = {"CUDAExecutionProvider": {"device_id": "0", "use_tf32": "1"}}
    assert options_lost(asked, tf32) == ["CUDAExecutionProvider.use_tf32=1"]


class _Ort122FallsBackToCpu(_OldOrtFallsBack):
    """onnxruntime 1.22: the same ignored ``enable_fallback=0``, but its fallback list is the
    CPU alone (1.22.1's ``_create_inference_session`` sets ``["CUDAExecutionProvider",
    "CPUExecutionProvider"]`` for TensorRT, then its ``if "NvTensorRTRTXExecutionProvider"``
    block's ``else`` overwrites it with ``["CPUExecutionProvider"]``): no CUDA options to
    compare, only the printed banner."""

    def InferenceSession(self, path, sess_options=None, providers=(), **kwargs):  # noqa: N802
        session = super().InferenceSession(path, sess_options, providers, **kwargs)
        names = [p if isinstance(p, str) else p[0] for p in providers]
        if "TensorrtExecutionProvider" in names:
            session.get_provider_options = lambda: {"CPUExecutionProvider": {}}
        return session


def test_onnxruntime_1_22_cpu_fallback_is_seen_by_its_banner(
    tiny_onnx_fp32: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    fake = _Ort122FallsBackToCpu()
    runner = OnnxRuntimeRunner(tiny_onnx_fp32)
    cuda = ("CUDAExecutionProvider", cuda_provider_options(0))
    trt = ("TensorrtExecutionProvider", {"device_id": 0})
    session = runner._create_session(
        fake, ort.SessionOptions(), [trt, cuda, "CPUExecutionProvider"]
    )
    assert [c[0] for c in fake.calls][1] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert session.get_provider_options()["CUDAExecutionProvider"]["use_tf32"] == "0"
    assert "TensorRT EP could not build the engine" in caplog.text
    assert "fell back to other providers" in caplog.text
    assert "EP Error" not in capsys.readouterr().out
