"""Benchmarks under load (issue 11.5): other processes' CPU use is measured before and during
timing, rows timed under load are marked, and no speed-up is concluded from them."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from p2p_deploy.bench.load import LoadSample, idle_sample, usable_cores
from p2p_deploy.bench.session import BenchArgs, run_bench


def test_disturbed_means_the_others_took_the_free_cores():
    quiet = LoadSample(1.0, own_cores=2.0, other_cores=0.05, usable_cores=2, load_avg_1m=2.0)
    shared = LoadSample(1.0, own_cores=0.7, other_cores=1.3, usable_cores=2, load_avg_1m=3.0)
    big = LoadSample(1.0, own_cores=2.0, other_cores=3.0, usable_cores=16, load_avg_1m=5.0)
    assert not quiet.disturbed and shared.disturbed and not big.disturbed
    assert "other processes used 1.3 of 2 cores" in shared.describe()


@pytest.mark.slow
def test_busy_loops_on_every_core_mark_rows_and_no_speedup_is_stated(
    tiny_checkpoint, tiny_onnx_fp32, tmp_path
):
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable_cores())
    ]
    try:
        time.sleep(0.2)
        assert idle_sample(0.5).disturbed  # the meter sees them
        args = BenchArgs(
            checkpoint=tiny_checkpoint,
            onnx=[tiny_onnx_fp32],
            backends=["torch", "onnxruntime"],
            batch=[1, 2],
            threads=1,
            warmup=0.05,
            duration=0.3,
            min_iters=3,
            out=tmp_path / "r",
        )
        report, paths = run_bench(args)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    import cv2

    assert cv2.getNumThreads() == 1  # --threads reaches OpenCV's pool too (the e2e run)
    rows = report["results"]
    assert rows and all(r["disturbed"] and r["load"]["other_cores"] > 0.5 for r in rows)
    assert all(r["speedup_vs_eager"] is None for r in rows)
    assert report["config"]["load_before"]["disturbed"]
    conclusions = report["conclusions"]
    assert conclusions[0].startswith("WARNING, timed under load: before timing, other processes")
    assert not [c for c in conclusions if re.search(r"\d\.\d+x\b", c)], conclusions  # no "4.2x"
    md = paths["md"].read_text()
    head, table = md.split("## Conclusions")
    assert "WARNING, timed under load" in head  # at the very top of the report
    assert table.count(" † |") == len(rows) and "| – |" in table  # marked, no speed-up cell
