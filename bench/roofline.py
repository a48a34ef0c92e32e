"""The compute floor: what the hardware's matrix rate allows, to judge how close a backend gets.

The generator's cost is known from its architecture (``generator_flops`` in p2p_deploy.models,
12.1 GFLOP per 256 px image at the defaults). The machine's dense matrix rate is measured here
with a torch matmul (fp32 on the CPU; fp32 and fp16 on a GPU). Floor = FLOPs / rate: no backend
at that precision can beat it by much, which tells a user when a speed target is out of reach.
"""

from __future__ import annotations

import time
from typing import Any


def matmul_rate(
    device: str = "cpu", dtype: str = "float32", n: int = 2048, seconds: float = 0.5
) -> float:
    """Measured dense matmul rate in GFLOP/s for an ``n x n`` product on ``device``.

    Runs for about ``seconds`` after two warm-up products; the best of the timed repetitions is
    taken (the rate the hardware can reach, not the average under interference).
    """
    import torch

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


def compute_floor(gflop_per_image: float, device: str) -> dict[str, Any]:
    """Matrix rates and the per-image floor at each precision measured on ``device``.

    Returns ``{"gflop_per_image", "rates_gflops": {"fp32": ..}, "floor_ms": {"fp32": ..}}``.
    """
    precisions = ["float32"] + (["float16"] if device.startswith("cuda") else [])
    rates = {p.replace("float", "fp"): round(matmul_rate(device, p), 1) for p in precisions}
    floors = {p: round(gflop_per_image / r * 1e3, 3) for p, r in rates.items()}
    return {"gflop_per_image": round(gflop_per_image, 3), "rates_gflops": rates, "floor_ms": floors}


def annotate_rows(rows: list[dict[str, Any]], gflop_per_image: float) -> None:
    """Add ``achieved_gflops`` (sustained rate from the row's throughput) to every row."""
    for r in rows:
        # Four significant digits, not one decimal: a tiny model's eager row runs at well
        # under 0.05 GFLOP/s, which a fixed rounding turned into 0.
        r["achieved_gflops"] = float(f"{gflop_per_image * r['throughput_ips']:.4g}")


def floor_conclusion(rows: list[dict[str, Any]], floor: dict[str, Any]) -> str | None:
    """One sentence: the fastest batch-1 row against the fp32 (and fp16) floor."""
    rows = [r for r in rows if not r.get("disturbed")]  # a loaded row is not the backend's speed
    if not rows or not floor.get("rates_gflops"):
        return None
    b = min(r["batch"] for r in rows)
    best = min((r for r in rows if r["batch"] == b), key=lambda r: r["latency_ms"]["p50"])
    per_img = best["latency_ms"]["p50"] / b
    parts = [
        f"{p} matmul {rate:.0f} GFLOP/s -> floor {floor['floor_ms'][p]:.2f} ms/image"
        for p, rate in floor["rates_gflops"].items()
    ]
    fp32_floor = floor["floor_ms"]["fp32"]
    return (
        f"Compute floor: {floor['gflop_per_image']:.3g} GFLOP per image; measured "
        + "; ".join(parts)
        + f". The fastest batch-{b} row ({best.get('label') or best['backend']} "
        f"{best['precision']}) takes {per_img:.2f} ms/image, {fp32_floor / per_img:.0%} of the "
        "fp32 floor's speed: an fp32 backend cannot be much faster than that floor."
    )
