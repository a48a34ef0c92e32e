"""Engine parity figures against ONNX Runtime fp32, computed on real arrays (the engine run
itself needs TensorRT and is in test_tensorrt_build's ``trt`` test)."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_deploy.export.trt_parity import (
    ENGINE_FP16_MIN_PSNR,
    ENGINE_FP32_MAX_ABS,
    engine_report,
    parity_batches,
)


def _ref(n: int, seed: int = 0) -> np.ndarray:
    return np.tanh(np.random.default_rng(seed).normal(size=(n, 3, 32, 32))).astype(np.float32)


def test_parity_batches_stay_inside_the_profile() -> None:
    assert parity_batches(1, 16) == (1, 3)
    assert parity_batches(1, 2) == (1, 2)
    assert parity_batches(4, 4) == (4,)
    assert parity_batches(1, 1) == (1,)


def test_fp16_rounding_passes_and_noise_fails() -> None:
    ref = _ref(3)
    half = ref.astype(np.float16).astype(np.float32)  # what an fp16 engine's rounding costs
    ok = engine_report("m.plan", "fp16", "stats", [(half, ref)])
    assert ok.metric == "psnr_db" and ok.threshold == ENGINE_FP16_MIN_PSNR
    assert ok.passed and ok.min_psnr_db > 60
    noisy = ref + np.random.default_rng(1).normal(0, 0.05, ref.shape).astype(np.float32)
    bad = engine_report("m.plan", "fp16", "stats", [(half, ref), (noisy, ref)])
    assert not bad.passed and bad.min_psnr_db < 40
    assert "FAILED" in bad.summary() and bad.to_dict()["passed"] is False


def test_fp32_bar_is_max_abs_err() -> None:
    ref = _ref(2)
    assert engine_report("m.plan", "fp32", "stats", [(ref + 5e-4, ref)]).passed
    report = engine_report("m.plan", "fp32", "stats", [(ref + 5e-3, ref)])
    assert report.threshold == ENGINE_FP32_MAX_ABS and not report.passed
    assert report.max_abs_err == pytest.approx(5e-3, rel=1e-3)


def test_nan_and_batch_mixing_fail() -> None:
    ref = _ref(3)
    nan = ref.copy()
    nan[0, 0, 0, 0] = np.nan
    assert not engine_report("m.plan", "fp16", "stats", [(nan, ref)]).passed
    # an engine whose batch output differs from its images run alone mixes frames
    x = _ref(3, seed=5)

    def single(xi: np.ndarray) -> np.ndarray:
        return ref[:1] * 0  # deliberately not what the batch run returned

    mixed = engine_report("m.plan", "fp16", "stats", [(ref, ref)], single, [x])
    assert mixed.batch_independence_err > 0.1 and not mixed.passed
    with pytest.raises(ValueError, match="output shape"):
        engine_report("m.plan", "fp16", "stats", [(ref[:2], ref)])


def test_fp32_batch_independence_is_held_to_the_engine_bar() -> None:
    """The batch-3 and batch-1 runs of an fp32 engine are different TensorRT tactics: they
    differ by reordered sums, held to the engine's own 1e-3, not the ONNX check's 1e-4."""
    ref = _ref(3)
    x = _ref(3, seed=5)

    def rounding(xi: np.ndarray) -> np.ndarray:  # each image alone, off by 5e-4
        k = int(np.argmax([np.array_equal(xi[0], xj) for xj in x]))
        return ref[k : k + 1] + 5e-4

    ok = engine_report("m.plan", "fp32", "stats", [(ref, ref)], rounding, [x])
    assert ok.batch_independence_err == pytest.approx(5e-4, rel=1e-2)
    assert ok.independence_tol == ENGINE_FP32_MAX_ABS and ok.passed

    def mixed(xi: np.ndarray) -> np.ndarray:
        k = int(np.argmax([np.array_equal(xi[0], xj) for xj in x]))
        return ref[k : k + 1] + 5e-3

    assert not engine_report("m.plan", "fp32", "stats", [(ref, ref)], mixed, [x]).passed


def test_a_run_time_failure_is_one_line(tiny_onnx_fp16, tiny_onnx_fp32, tmp_path, monkeypatch):
    """The runner's run-time errors are RuntimeError (no context, refused shape or address, a
    failed execute_async_v3, CUDA out of memory): the parity run turns them into one P2PError
    naming the plan, so a plan that cannot run is one line (and an INT8 plan's, a note)."""
    from p2p_deploy.errors import P2PError
    from p2p_deploy.export.tensorrt_build import BatchProfile, engine_card
    from p2p_deploy.export.trt_parity import check_engine_parity
    from p2p_deploy.models.card import read_export_card
    from p2p_deploy.runners import tensorrt_runner

    plan = tmp_path / "model_fp16.plan"
    plan.write_bytes(b"staged engine")
    engine_card(
        read_export_card(tiny_onnx_fp16),
        precision="fp16",
        profile=BatchProfile(1, 4, 16),
        trt_version="10.13.3.9",
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
    ).write(plan)
    closed = []

    class FailingRunner:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            closed.append(True)

        def infer(self, x):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")

    monkeypatch.setattr(tensorrt_runner, "TensorRTRunner", FailingRunner)
    with pytest.raises(P2PError) as e:
        check_engine_parity(plan, tiny_onnx_fp32, BatchProfile(1, 4, 16))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{plan}: the engine failed its parity run (")
    assert "TensorRT execution failed" in msg and closed == [True]


def test_int8_bars_pass_int8_rounding_and_fail_batch_mixing() -> None:
    """The int8 engine is held to >= 30 dB against its own INT8 graph and to 0.15 between a
    batch and its images run alone: a second int8 implementation's rounding (OpenVINO against
    ONNX Runtime on the full-size generator: >= 37.7 dB, batch vs alone up to 5.4e-2) passes,
    frames sharing statistics (0.74, 23-30 dB) and a broken engine do not."""
    from p2p_deploy.export.trt_parity import ENGINE_INDEPENDENCE_TOL, ENGINE_INT8_MIN_PSNR

    assert ENGINE_INT8_MIN_PSNR == 30.0 and ENGINE_INDEPENDENCE_TOL["int8"] == 0.15
    rng = np.random.default_rng(3)
    ref, x = _ref(3), _ref(3, seed=5)
    # sparse one-step flips carried on: about 38 dB, peaks of 5.4e-2
    flips = (rng.random(ref.shape) < 0.05) * rng.normal(0, 0.05, ref.shape)
    got = (ref + np.clip(flips, -0.054, 0.054)).astype(np.float32)

    def alone_from(out: np.ndarray):
        def run(xi: np.ndarray) -> np.ndarray:
            k = int(np.argmax([np.array_equal(xi[0], xj) for xj in x]))
            return out[k : k + 1]

        return run

    ok = engine_report("m.plan", "int8", "stats", [(got, ref)], alone_from(got), [x])
    assert ok.min_psnr_db > 35 and ok.batch_independence_err == 0 and ok.passed
    ok = engine_report("m.plan", "int8", "stats", [(got, ref)], alone_from(ref), [x])
    assert 0.05 < ok.batch_independence_err < 0.055 and ok.passed
    mixed = alone_from(ref + 0.74 * (x[:, :, :1, :1] > 0))  # statistics shared across frames
    bad = engine_report("m.plan", "int8", "stats", [(got, ref)], mixed, [x])
    assert bad.batch_independence_err > 0.5 and not bad.passed
    noisy = ref + rng.normal(0, 0.08, ref.shape).astype(np.float32)  # ~28 dB
    assert not engine_report("m.plan", "int8", "stats", [(noisy, ref)]).passed


def test_fp16_batch_independence_allows_rounding_not_mixing() -> None:
    """fp16 engines: the batch-1 and batch-3 tactics round to fp16 differently (each run may be
    0.02 RMS off fp32 under the 40 dB bar), held to 5e-2; shared statistics (0.74) fail."""
    ref, x = _ref(3), _ref(3, seed=5)
    got = ref.astype(np.float16).astype(np.float32)

    def alone_plus(delta):
        def run(xi: np.ndarray) -> np.ndarray:
            k = int(np.argmax([np.array_equal(xi[0], xj) for xj in x]))
            return got[k : k + 1] + delta

        return run

    ok = engine_report("m.plan", "fp16", "stats", [(got, ref)], alone_plus(0.02), [x])
    assert ok.independence_tol == 5e-2 and ok.passed
    bad = engine_report("m.plan", "fp16", "stats", [(got, ref)], alone_plus(0.3), [x])
    assert not bad.passed
