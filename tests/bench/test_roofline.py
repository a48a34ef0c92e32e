"""The compute floor: measured matrix rate, per-row achieved rate, the conclusion sentence."""

from __future__ import annotations

import os
import time

import pytest

from p2p_deploy.bench.roofline import annotate_rows, compute_floor, floor_conclusion, matmul_rate


def test_matmul_rate_is_measured_and_positive():
    n = 256
    t0 = time.perf_counter()
    rate = matmul_rate("cpu", n=n, seconds=0.05)
    wall = time.perf_counter() - t0
    # The best repetition is no slower than the whole call (2 n^3 FLOP per product) ...
    assert rate >= 2 * n**3 / wall / 1e9
    # ... and no faster than the cores can compute: 5 GHz x 64 fp32 FLOP per cycle (two
    # 512-bit FMA units) per usable core is above any CPU's peak.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert rate <= cores * 5.0 * 64


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
