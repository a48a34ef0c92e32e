"""Fixtures of the bench tests: one small harness run shared by the report tests.

torch runs with one thread here: the test machine's two cores are shared, and torch's OpenMP
pool slows down by orders of magnitude when its threads fight other processes for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FAST = {"warmup_s": 0.02, "duration_s": 0.08, "min_iters": 3}


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fast_policy():
    from p2p_deploy.bench.timing import TimingPolicy

    return TimingPolicy(**FAST)


@pytest.fixture(scope="session")
def tiny_candidates(tiny_checkpoint: Path, tiny_onnx_fp32: Path):
    """Eager torch fp32 (baseline) and ONNX Runtime CPU on the same tiny generator."""
    from p2p_deploy.bench.harness import Candidate
    from p2p_deploy.runners.factory import open_runner

    ck, ox = str(tiny_checkpoint), str(tiny_onnx_fp32)
    return [
        Candidate(
            "onnxruntime CPU",
            lambda: open_runner(ox, "onnxruntime", device="cpu", threads=1),
            source=ox,
        ),
        Candidate(
            "torch eager",
            lambda: open_runner(ck, "torch", device="cpu", precision="fp32", channels_last=False),
            baseline=True,
            source=ck,
        ),
    ]


@pytest.fixture(scope="session")
def harness_result(tiny_candidates, fast_policy):
    """One harness run at batches 1 and 2 (baseline listed last on purpose)."""
    from p2p_deploy.bench.harness import make_inputs, run_benchmark

    return run_benchmark(tiny_candidates, [1, 2], fast_policy, make_inputs(32, 2, seed=3))


@pytest.fixture(scope="session")
def tiny_report(harness_result, tmp_path_factory):
    """A report built from ``harness_result`` and written to disk: (report dict, paths)."""
    from p2p_deploy.bench import environment
    from p2p_deploy.bench.report import build_report, write_report

    report = build_report(
        environment.collect(),
        {
            "warmup_s": 0.02,
            "duration_s": 0.08,
            "min_iters": 3,
            "model_desc": "tiny",
            "inputs_desc": "noise",
        },
        "p2p bench --checkpoint tiny --batch 1,2",
        harness_result.rows,
        [s.to_dict() for s in harness_result.skipped],
        None,
    )
    out = tmp_path_factory.mktemp("reports") / "tiny-machine-2026-01-01"
    return report, write_report(report, out)
