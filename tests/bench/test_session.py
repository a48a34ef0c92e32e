"""`run_bench` and the candidate plan: what reaches the runners, and models that do not fit
the benchmarked generator (a skipped row with the reason, never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_tiny_generator

import p2p_deploy.bench.session as _session
from p2p_deploy.bench.harness import Candidate, make_inputs, run_benchmark
from p2p_deploy.bench.session import BenchArgs, run_bench, validate
from p2p_deploy.errors import P2PError

QUICK = {"warmup": 0.02, "duration": 0.08, "min_iters": 3}


@pytest.fixture(scope="module")
def onnx_64px(tmp_path_factory) -> Path:
    """A 64 px generator's ONNX (the tiny checkpoint is 32 px)."""
    from p2p_deploy.export.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx64") / "model.onnx"
    export_onnx(make_tiny_generator(image_size=64, n_down=6), path, precision="fp32")
    return path


@pytest.fixture(scope="module")
def onnx_running(tmp_path_factory, tiny_checkpoint) -> Path:
    """The tiny checkpoint exported in ``running`` mode (its default is ``stats``)."""
    from p2p_deploy.export.onnx_export import export_onnx
    from p2p_deploy.models.opening import open_model

    path = tmp_path_factory.mktemp("onnx_running") / "model.onnx"
    export_onnx(open_model(tiny_checkpoint).generator(), path, test_norm="running")
    return path


@pytest.mark.slow
def test_threads_reach_onnxruntime(tiny_checkpoint, tiny_onnx_fp32, tmp_path, monkeypatch):
    """``--threads 1``: the ONNX Runtime runner the bench opens has one intra-op thread."""

    opened = []
    real_plan = _session.plan_candidates

    def plan_and_open(**kwargs):  # the real plan; records what each candidate opens
        cands, skipped = real_plan(**kwargs)
        for c in cands:
            if c.label.startswith("onnxruntime"):
                with c.open() as runner:
                    opened.append(runner.threads)
        return cands, skipped

    monkeypatch.setattr(_session, "plan_candidates", plan_and_open)
    args = BenchArgs(
        onnx=[tiny_onnx_fp32],
        backends=["onnxruntime"],
        batch=[1],
        threads=1,
        out=tmp_path / "r",
        **QUICK,
    )
    report, _ = run_bench(args)
    assert opened == [1]
    assert report["results"][0]["backend"] == "onnxruntime"


# ids: a bare "gpu" id would be read as the ``gpu`` marker and skip the case without a GPU
@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "cuda0"], ids=["g", "x", "C", "c0"])
def test_bad_device_is_one_line(tiny_checkpoint, device):
    with pytest.raises(P2PError, match=r"^--device '.*': must be auto, cpu, cuda or cuda:N .*\.$"):
        validate(BenchArgs(checkpoint=tiny_checkpoint, device=device))


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_good_devices_pass(tiny_checkpoint, device):
    import torch

    from p2p_deploy.bench.candidates import resolve_device

    args = BenchArgs(checkpoint=tiny_checkpoint, device=device)
    validate(args)  # raises for a bad one (test_bad_device_is_one_line)
    auto = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert resolve_device(args.device) == {"auto": auto}.get(device, device)
    assert f"--device {device}" in args.command()


@pytest.mark.slow
def test_models_that_do_not_match_the_checkpoint_are_skipped(
    tiny_checkpoint, tiny_onnx_fp32, onnx_64px, onnx_running, tmp_path
):
    """Another image size or test norm: a skipped row naming the file, the rest is timed."""
    args = BenchArgs(
        checkpoint=tiny_checkpoint,
        onnx=[onnx_64px, onnx_running, tiny_onnx_fp32],
        backends=["torch", "onnxruntime"],
        batch=[1],
        threads=1,
        out=tmp_path / "r",
        **QUICK,
    )
    report, paths = run_bench(args)
    assert (tmp_path / "r" / "report.json").exists()
    sources = {r["source"] for r in report["results"]}
    assert sources == {str(tiny_checkpoint), str(tiny_onnx_fp32)}
    reasons = [s["reason"] for s in report["skipped"] if s["label"] == "onnxruntime"]
    assert any(f"{onnx_64px}: 64 px, the checkpoint is 32 px" in r for r in reasons)
    assert any(f"{onnx_running}: exported with test norm running" in r for r in reasons)
    json.dumps(report)


@pytest.mark.slow
def test_only_mismatched_onnx_exports_nothing_in_their_place(tiny_checkpoint, onnx_64px, tmp_path):
    args = BenchArgs(
        checkpoint=tiny_checkpoint,
        onnx=[onnx_64px],
        backends=["torch", "onnxruntime"],
        batch=[1],
        threads=1,
        out=tmp_path / "r",
        **QUICK,
    )
    report, _ = run_bench(args)
    assert {r["backend"] for r in report["results"]} == {"torch"}


@pytest.mark.slow
def test_candidate_failing_mid_run_is_a_skipped_row(tiny_candidates, onnx_64px, fast_policy):
    """A runner that raises while running (a 64 px model fed 32 px images) is skipped with a
    one-line reason; the other candidates' rows are still there."""
    from p2p_deploy.runners.factory import open_runner

    src = str(onnx_64px)
    bad = Candidate(
        "onnxruntime CPU 64px",
        lambda: open_runner(src, "onnxruntime", device="cpu", threads=1),
        source=src,
    )
    res = run_benchmark([*tiny_candidates, bad], [1], fast_policy, make_inputs(32, 1))
    assert {r["label"] for r in res.rows} == {"torch eager", "onnxruntime CPU"}
    (skip,) = [s for s in res.skipped if s.label == bad.label]
    assert skip.reason and "\n" not in skip.reason


@pytest.mark.slow
def test_report_names_no_folder_of_the_machine_that_made_it(tiny_onnx_fp32, tmp_path, monkeypatch):
    """Paths inside the working folder are shown relative to it: the reproducing command and
    the model line of a committed report carry no temporary folder."""
    import shutil

    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    for src in (tiny_onnx_fp32, tiny_onnx_fp32.with_name(tiny_onnx_fp32.name + ".json")):
        shutil.copy(src, work / "models" / src.name)
    monkeypatch.chdir(work)
    args = BenchArgs(
        onnx=[work / "models" / tiny_onnx_fp32.name],
        backends=["onnxruntime"],
        batch=[1],
        out=work / "report",
        **QUICK,
    )
    report, paths = run_bench(args)
    model = f"models/{tiny_onnx_fp32.name}"
    assert f"--onnx {model}" in report["command"] and "--out report" in report["command"]
    md = paths["md"].read_text()
    assert f"(`{model}`)" in md and str(tmp_path) not in md
