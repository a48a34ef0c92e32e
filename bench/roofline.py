"""The compute floor: what the hardware's matrix rate allows, to judge how close a backend gets.

The generator's cost is known from its architecture (``generator_flops`` in p2p_deploy.models,
12.1 GFLOP per 256 px image at the defaults). The machine's dense matrix rate is measured here
with a torch matmul (fp32 on the CPU; fp32 and fp16 on a GPU). Floor = FLOPs / rate: no backend
at that precision can beat it by much, which tells a user when a speed target is out of reach.

Every precision a row runs in gets its own floor. On a CPU, bf16 and int8 rates are *measured*
with torch's own kernels (a bf16 matmul, oneDNN: AMX or AVX512_BF16 where present;
``torch._int_mm`` for int8) where torch has them, and otherwise *derived* from the measured
fp32 rate and the CPU's instruction set (:data:`ISA_FACTORS`); the report says which, and keeps
the derived figure beside a measured one. A row above 100% of a measured floor means the
backend's kernels beat torch's, i.e. the measured rate is not the machine's peak.

Without torch (a deploy install) the CPU's fp32 rate is measured with a numpy matmul (its BLAS)
and bf16/int8 are derived from it; a GPU run then has no floor (nothing here can time a GPU
matmul), and the report says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


def matmul_rate(
    device: str = "cpu", dtype: str = "float32", n: int = 2048, seconds: float = 0.5
) -> float:
    """Measured dense matmul rate in GFLOP/s for an ``n x n`` product on ``device``.

    Runs for about ``seconds`` after two warm-up products; the best of the timed repetitions is
    taken (the rate the hardware can reach, not the average under interference).
    """
    try:
        import torch
    except ImportError:
        if device.startswith("cuda") or dtype != "float32":
            raise
        return _numpy_matmul_rate(n, seconds)

    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(4 if cuda else 1):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - t0) / (4 if cuda else 1))
    return 2 * n**3 / best / 1e9


def _numpy_matmul_rate(n: int, seconds: float) -> float:
    """fp32 ``n x n`` matmul rate (GFLOP/s) through numpy's BLAS: the torch-free CPU figure."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    for _ in range(2):
        a @ b
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _have_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# Peak multiply-accumulate rate per core and cycle relative to AVX-512 fp32 FMA, by ISA flag
# (/proc/cpuinfo names), best first: the dot-product instructions' widths (VNNI: 4 int8 MACs per
# 32-bit lane; AVX512_BF16: 2 bf16 per lane) and the AMX tile unit (Intel's published 1024 int8
# / 512 bf16 MACs per cycle per core, against 32 fp32 FMAs for two AVX-512 units).
ISA_FACTORS: dict[str, tuple[tuple[str, float], ...]] = {
    "int8": (("amx_int8", 32.0), ("avx512_vnni", 4.0), ("avx_vnni", 4.0)),
    "bf16": (("amx_bf16", 16.0), ("avx512_bf16", 2.0)),
    # fp16 on a CPU: AMX-FP16 tiles, AVX512_FP16 (32 halves per register); ONNX Runtime's CPU
    # provider computes most of an fp16 graph in fp32 anyway (cast insertion).
    "fp16": (("amx_fp16", 16.0), ("avx512_fp16", 2.0)),
}
# Row precisions that map to another's floor (OpenVINO's bf16 hint leaves some layers fp32:
# the bf16 floor is still a valid lower bound).
_FLOOR_OF = {"bf16+fp32": "bf16"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def derived_rate(precision: str, fp32_rate: float, flags: set[str]) -> tuple[float, str]:
    """(GFLOP/s, why) for ``precision`` from the measured fp32 rate and the ISA flags."""
    for flag, factor in ISA_FACTORS.get(precision, ()):
        if flag in flags:
            return fp32_rate * factor, f"derived: fp32 rate x {factor:g} ({flag})"
    return fp32_rate, f"derived: fp32 rate x 1 (no {precision} instructions found)"


def int8_matmul_rate(n: int = 2048, seconds: float = 0.5) -> float:
    """Measured int8 x int8 -> int32 matmul rate (``torch._int_mm``, CPU) in GOP/s."""
    import torch

    a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    for _ in range(2):
        torch._int_mm(a, b)
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        torch._int_mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _measured_cpu_rate(precision: str) -> tuple[float, str] | None:
    if not _have_torch():
        return None
    try:
        if precision == "bf16":
            return matmul_rate("cpu", "bfloat16"), "measured: torch bf16 matmul (oneDNN)"
        if precision == "int8":
            return int8_matmul_rate(), "measured: torch._int_mm int8 matmul"
    except (RuntimeError, AttributeError, NotImplementedError):  # no such kernel in this torch
        return None
    return None


def compute_floor(
    gflop_per_image: float,
    device: str,
    precisions: Iterable[str] = (),
    frame: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Matrix rates and the per-image floor at each precision on ``device``.

    ``precisions``: the rows' precisions; on a CPU ``bf16`` and ``int8`` get a floor of their
    own (measured, else derived: see the module docstring). ``frame``: the (H, W) the
    cost was computed at when it is not the model's own square (``p2p bench --size``).
    Returns ``{"gflop_per_image", "rates_gflops": {"fp32": ..}, "floor_ms": {"fp32": ..},
    "rate_method": {"fp32": "measured: ..."}, "derived_rates_gflops": {..}, "cpu_flags": [..]}``.
    """
    cuda = device.startswith("cuda")
    out: dict[str, Any] = {"gflop_per_image": round(gflop_per_image, 3)}
    if frame is not None:
        out["frame"] = list(frame)
    if not _have_torch() and cuda:
        out.update(rates_gflops={}, floor_ms={}, rate_method={})
        out["note"] = "no floor: timing a GPU matmul needs torch, which is not installed"
        return out
    base = ["float32"] + (["float16"] if cuda else [])
    rates = {p.replace("float", "fp"): round(matmul_rate(device, p), 1) for p in base}
    lib = "torch" if _have_torch() else "numpy"
    method = {p: f"measured: {lib} {p} matmul" for p in rates}
    if not cuda:
        flags = cpu_flags()
        derived = {}
        for p in sorted({_FLOOR_OF.get(p, p) for p in precisions} & set(ISA_FACTORS)):
            d_rate, d_why = derived_rate(p, rates["fp32"], flags)
            derived[p] = round(d_rate, 1)
            measured = _measured_cpu_rate(p)
            rate, why = measured if measured else (d_rate, d_why)
            rates[p], method[p] = round(rate, 1), why
        if derived:
            out["derived_rates_gflops"] = derived
            out["cpu_flags"] = sorted(
                f for f in flags if any(f == flag for v in ISA_FACTORS.values() for flag, _ in v)
            )
    floors = {p: round(gflop_per_image / r * 1e3, 3) for p, r in rates.items()}
    out.update(rates_gflops=rates, floor_ms=floors, rate_method=method)
    return out


def floor_for(precision: str, floor: dict[str, Any]) -> float | None:
    """The per-image floor (ms) of a row's precision; the lowest one for an unknown label."""
    floors = floor.get("floor_ms") or {}
    key = _FLOOR_OF.get(precision, precision)
    if key in floors:
        return floors[key]
    return min(floors.values()) if floors else None


def annotate_rows(
    rows: list[dict[str, Any]], gflop_per_image: float, floor: dict[str, Any] | None = None
) -> None:
    """Add ``achieved_gflops`` (sustained rate from the row's throughput) to every row, and
    with ``floor`` its own precision's ``floor_ms`` per image and ``floor_pct`` (floor /
    the row's time per image, in %: how close it gets)."""
    for r in rows:
        # Four significant digits, not one decimal: a tiny model's eager row runs at well
        # under 0.05 GFLOP/s, which a fixed rounding turned into 0.
        r["achieved_gflops"] = float(f"{gflop_per_image * r['throughput_ips']:.4g}")
        r["gflop_per_frame"] = float(f"{gflop_per_image:.4g}")
        f = floor_for(r["precision"], floor) if floor else None
        if f is not None:
            per_img = r["latency_ms"]["p50"] / r["batch"]
            r["floor_ms"] = f
            r["floor_pct"] = round(100 * f / per_img, 1)


def floor_conclusion(rows: list[dict[str, Any]], floor: dict[str, Any]) -> str | None:
    """One sentence: the matmul rates, then per precision the fastest row at the smallest
    batch against that precision's own floor."""
    rows = [r for r in rows if not r.get("disturbed")]  # a loaded row is not the backend's speed
    if not rows or not floor.get("rates_gflops"):
        return None
    b = min(r["batch"] for r in rows)
    methods = floor.get("rate_method", {})
    parts = [
        f"{p} matmul {rate:.0f} GFLOP/s -> floor {floor['floor_ms'][p]:.2f} ms/image"
        + (f" ({methods[p]})" if p in methods else "")
        for p, rate in floor["rates_gflops"].items()
    ]
    order = {"fp32": 0, "fp16": 1, "bf16": 2, "bf16+fp32": 3, "int8": 4}
    own = []
    for p in sorted({r["precision"] for r in rows}, key=lambda p: (order.get(p, 9), p)):
        f = floor_for(p, floor)
        cands = [r for r in rows if r["batch"] == b and r["precision"] == p]
        if f is None or not cands:
            continue
        fast = min(cands, key=lambda r: r["latency_ms"]["p50"])
        t = fast["latency_ms"]["p50"] / b
        key = _FLOOR_OF.get(p, p)
        if key not in floor.get("floor_ms", {}):
            key = "lowest"
        own.append(
            f"{fast.get('label') or fast['backend']} {p}: {t:.2f} ms/image, {f / t:.0%} of the "
            f"{key} floor's speed"
        )
    frame = floor.get("frame")
    per = f"frame ({frame[0]}x{frame[1]})" if frame else "image"
    return (
        f"Compute floor: {floor['gflop_per_image']:.3g} GFLOP per {per}; "
        + "; ".join(parts)
        + f". Fastest batch-{b} row per precision against its own floor: "
        + "; ".join(own)
        + ". No backend can be much faster than the floor of the precision it computes in."
    )
