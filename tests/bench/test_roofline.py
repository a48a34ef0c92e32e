"""The compute floor: measured matrix rate, per-row achieved rate, the conclusion sentence."""

from __future__ import annotations

import pytest

from p2p_deploy.bench.roofline import annotate_rows, compute_floor, floor_conclusion, matmul_rate


def test_matmul_rate_is_measured_and_positive():
    rate = matmul_rate("cpu", n=256, seconds=0.05)
    assert 0.1 < rate < 1e5  # GFLOP/s: anything from a slow VM to a big server


def test_floor_and_conclusion_follow_the_numbers():
    floor = compute_floor(1.0, "cpu")
    fp32 = floor["rates_gflops"]["fp32"]
    assert set(floor["rates_gflops"]) == {"fp32"}  # no fp16 matmul rate on a CPU
    assert floor["floor_ms"]["fp32"] == pytest.approx(1e3 / fp32, rel=1e-2)
    rows = [
        {
            "backend": "torch",
            "precision": "fp32",
            "batch": 1,
            "throughput_ips": 10.0,
            "latency_ms": {"p50": 100.0},
        },
        {
            "backend": "onnxruntime",
            "precision": "fp32",
            "batch": 1,
            "throughput_ips": 20.0,
            "latency_ms": {"p50": 50.0},
        },
        {
            "backend": "onnxruntime",
            "precision": "fp32",
            "batch": 4,
            "throughput_ips": 30.0,
            "latency_ms": {"p50": 130.0},
        },
    ]
    annotate_rows(rows, 2.0)
    assert [r["achieved_gflops"] for r in rows] == [20.0, 40.0, 60.0]
    line = floor_conclusion(
        rows, {"gflop_per_image": 2.0, "rates_gflops": {"fp32": 100.0}, "floor_ms": {"fp32": 20.0}}
    )
    # The fastest batch-1 row (onnxruntime, 50 ms) against a 20 ms floor: 40%.
    assert "onnxruntime fp32" in line and "50.00 ms/image" in line and "40%" in line
    assert floor_conclusion([], floor) is None
