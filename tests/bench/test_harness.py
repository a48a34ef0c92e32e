"""The harness on real tiny runners: eager torch (baseline) and ONNX Runtime CPU."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_deploy.bench.harness import Candidate, make_inputs, run_benchmark
from p2p_deploy.errors import P2PError
from p2p_deploy.runners.base import Runner


def test_one_row_per_candidate_and_batch(harness_result):
    got = sorted((r["backend"], r["batch"]) for r in harness_result.rows)
    assert got == [("onnxruntime", 1), ("onnxruntime", 2), ("torch", 1), ("torch", 2)]
    assert harness_result.rows[0]["backend"] == "torch"  # the baseline runs first
    assert harness_result.skipped == []


def test_rows_are_sane(harness_result):
    for r in harness_result.rows:
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["iterations"] >= 3 and r["warmup_iterations"] >= 1
        assert r["precision"] == "fp32" and r["device"] == "cpu"
        assert r["throughput_ips"] == pytest.approx(r["batch"] * 1e3 / lat["mean"], rel=1e-3)
        assert r["peak_host_rss_mb"] > 10 and r["peak_gpu_mem_mb"] is None
        assert r["model_ms"] is None and r["end_to_end_ms"] == pytest.approx(lat["p50"], rel=1e-3)


def test_speedups_come_from_the_same_run(harness_result):
    base = {
        r["batch"]: r["latency_ms"]["p50"] for r in harness_result.rows if r["backend"] == "torch"
    }
    for r in harness_result.rows:
        assert r["speedup_vs_eager"] == pytest.approx(
            base[r["batch"]] / r["latency_ms"]["p50"], rel=2e-3
        )
        if r["backend"] == "torch":
            assert r["speedup_vs_eager"] == 1.0


def test_accuracy_against_eager(harness_result):
    for r in harness_result.rows:
        if r["backend"] == "torch":  # eager vs itself: exact, PSNR null (infinite)
            assert r["max_abs_err"] == 0.0 and r["psnr_db"] is None
        else:  # ONNX Runtime fp32 computes the same function
            assert 0.0 <= r["max_abs_err"] < 1e-3
            assert r["psnr_db"] is None or r["psnr_db"] > 60


class _BrokenRunner(Runner):
    """A real runner whose output is NaN: its row must carry the error, not a finite score."""

    backend = "onnxruntime"

    def __init__(self) -> None:
        super().__init__()
        self.image_size = 32

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        return np.full_like(batch, np.nan)


class _RefusingRunner(_BrokenRunner):
    backend = "tensorrt"

    def _activate(self) -> None:
        raise P2PError("model.plan: built for another GPU.")


class _SmallRunner(_BrokenRunner):
    def __init__(self) -> None:
        super().__init__()
        self.max_batch = 1

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        return batch.copy()


def test_failures_are_reported_not_hidden(tiny_candidates, fast_policy):
    baseline = [c for c in tiny_candidates if c.baseline]
    cands = baseline + [
        Candidate("broken", _BrokenRunner),
        Candidate("refusing", _RefusingRunner),
        Candidate("small", _SmallRunner),
    ]
    res = run_benchmark(cands, [1, 2], fast_policy, make_inputs(32, 2))
    broken = [r for r in res.rows if r["label"] == "broken"]
    assert len(broken) == 2 and all(
        "NaN" in r["accuracy_error"] and r["max_abs_err"] is None for r in broken
    )
    reasons = {(s.label, s.batch): s.reason for s in res.skipped}
    assert "another GPU" in reasons[("refusing", None)]
    assert "max batch 1" in reasons[("small", 2)]
    assert [r["batch"] for r in res.rows if r["label"] == "small"] == [1]


def test_no_baseline_means_null_ratios(tiny_candidates, fast_policy):
    ort = [c for c in tiny_candidates if not c.baseline]
    res = run_benchmark(ort, [1], fast_policy, make_inputs(32, 1))
    (row,) = res.rows
    assert row["speedup_vs_eager"] is None and row["max_abs_err"] is None and row["psnr_db"] is None


def test_inputs_are_deterministic_and_in_range():
    a, b = make_inputs(8, 3, seed=5), make_inputs(8, 3, seed=5)
    assert a.shape == (3, 3, 8, 8) and a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    real = np.zeros((2, 3, 8, 8), np.float32)
    assert make_inputs(8, 5, images=real).shape == (5, 3, 8, 8)


def test_tensorrt_skip_reason_names_the_missing_step(tmp_path):
    from p2p_deploy.bench.candidates import plan_candidates
    from p2p_deploy.deps import available

    cands, skipped = plan_candidates(
        checkpoint=None,
        onnx=[],
        engines=[],
        backends=["tensorrt"],
        device="cpu",
        test_norm=None,
        workdir=tmp_path,
    )
    assert cands == [] and [s.label for s in skipped] == ["tensorrt"]
    want = "no --engine given" if available("tensorrt") else "tensorrt is not installed"
    assert want in skipped[0].reason


def test_compiled_rows_open_one_static_shape(tmp_path, monkeypatch, tiny_checkpoint):
    """On CUDA the compile rows are timed at the largest batch only and opened with that
    static batch (one compiled shape, the last batch of an end-to-end run padded to it)."""
    from p2p_deploy.bench.candidates import plan_candidates
    from p2p_deploy.models.opening import open_model
    from p2p_deploy.runners import factory

    monkeypatch.setattr(factory, "open_runner", lambda *a, **kw: kw)
    cands, _ = plan_candidates(
        checkpoint=open_model(tiny_checkpoint),
        onnx=[],
        engines=[],
        backends=["torch"],
        device="cuda:0",
        test_norm=None,
        workdir=tmp_path,
        batches=(1, 16, 64),
    )
    compiled = [c for c in cands if "compile" in c.label]
    assert [c.label for c in compiled] == ["torch compile", "torch compile+graphs"]
    for c in compiled:
        opened = c.open()
        assert c.batches == (64,) and opened["compile"] and opened["static_batch"] == 64
    assert all(not c.open().get("static_batch") for c in cands if c not in compiled)


def test_model_time_comes_from_the_public_device_step(fast_policy):
    """The harness asks each runner for its public ``device_step`` (never its internals);
    a runner without one (None, every CPU runner) gets a null model time."""

    class _Stepless(_SmallRunner):
        def __init__(self) -> None:
            super().__init__()
            self.max_batch = None
            self.asked: list[int] = []

        def device_step(self, batch: np.ndarray):
            self.asked.append(batch.shape[0])
            return super().device_step(batch)

    made: list[_Stepless] = []

    def open_one() -> _Stepless:
        made.append(_Stepless())
        return made[-1]

    res = run_benchmark([Candidate("stepless", open_one)], [1, 2], fast_policy, make_inputs(32, 2))
    assert made[0].asked == [1, 2]
    assert [r["model_ms"] for r in res.rows] == [None, None]
