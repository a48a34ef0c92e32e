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


def test_each_precision_gets_its_own_floor(monkeypatch):
    from p2p_deploy.bench import roofline

    # int8 and bf16 rates: measured with torch's kernels where it has them, derived otherwise
    monkeypatch.setattr(roofline, "matmul_rate", lambda device, dtype, **kw: 100.0)
    monkeypatch.setattr(roofline, "cpu_flags", lambda: {"avx512f", "avx512_vnni", "avx512_bf16"})
    monkeypatch.setattr(roofline, "int8_matmul_rate", lambda **kw: (_ for _ in ()).throw(
        RuntimeError("no int8 kernel")))  # fmt: skip
    floor = compute_floor(1.0, "cpu", {"fp32", "int8", "bf16+fp32"})
    assert floor["rates_gflops"] == {"fp32": 100.0, "bf16": 100.0, "int8": 400.0}
    assert floor["rate_method"]["int8"] == "derived: fp32 rate x 4 (avx512_vnni)"
    assert floor["rate_method"]["bf16"].startswith("measured: torch bf16 matmul")
    assert floor["derived_rates_gflops"] == {"bf16": 200.0, "int8": 400.0}
    assert floor["floor_ms"]["int8"] == 2.5
    rows = [
        {"backend": "openvino", "precision": "int8", "batch": 1, "throughput_ips": 200.0,
         "latency_ms": {"p50": 5.0}},
        {"backend": "openvino", "precision": "bf16+fp32", "batch": 1, "throughput_ips": 100.0,
         "latency_ms": {"p50": 10.0}},
        {"backend": "onnxruntime", "precision": "fp32", "batch": 1, "throughput_ips": 50.0,
         "latency_ms": {"p50": 20.0}},
    ]  # fmt: skip
    annotate_rows(rows, 1.0, floor)
    assert [r["floor_pct"] for r in rows] == [50.0, 100.0, 50.0]  # int8 2.5 of 5 ms, ...
    line = floor_conclusion(rows, floor)
    assert "openvino int8: 5.00 ms/image, 50% of the int8 floor's speed" in line
    assert "bf16+fp32: 10.00 ms/image, 100% of the bf16 floor's speed" in line
    assert "onnxruntime fp32: 20.00 ms/image, 50% of the fp32 floor's speed" in line
    assert "int8 matmul 400 GFLOP/s -> floor 2.50 ms/image (derived: fp32 rate x 4" in line


def test_derived_rates_follow_the_isa():
    from p2p_deploy.bench.roofline import derived_rate

    assert derived_rate("int8", 10.0, {"amx_int8", "avx512_vnni"})[0] == 320.0
    assert derived_rate("bf16", 10.0, {"amx_bf16"})[0] == 160.0
    rate, why = derived_rate("int8", 10.0, {"avx2"})
    assert rate == 10.0 and "no int8 instructions" in why


def test_floor_without_torch(monkeypatch):
    """A deploy install has no torch: the CPU's fp32 rate comes from numpy's matmul and bf16 /
    int8 are derived from it; a GPU gets no floor (and says why) rather than a crash."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    cpu = compute_floor(1.0, "cpu", ["fp32", "int8"])
    assert cpu["rates_gflops"]["fp32"] > 0
    assert cpu["rate_method"]["fp32"] == "measured: numpy fp32 matmul"
    assert cpu["rate_method"]["int8"].startswith("derived: ")
    gpu = compute_floor(1.0, "cuda:0", ["fp16"])
    assert gpu["floor_ms"] == {} and "needs torch" in gpu["note"]
    assert floor_conclusion([{"batch": 1, "precision": "fp16", "latency_ms": {"p50": 1.0}}],
                            gpu) is None
