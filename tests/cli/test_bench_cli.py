"""`p2p bench` end to end on a tiny checkpoint: report written, numbers consistent, errors
in one line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from p2p_deploy.bench.schema import REPORT_SCHEMA
from p2p_deploy.cli import main


@pytest.fixture(scope="module")
def bench_run(tiny_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench_cli")
    folder = tmp / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 255, (40, 48, 3), np.uint8))
    out = tmp / "report"
    rc = main(
        [
            "bench",
            "--checkpoint",
            str(tiny_checkpoint),
            "--batch",
            "1,2",
            "--warmup",
            "0.05",
            "--duration",
            "0.2",
            "--min-iters",
            "3",
            "--threads",
            "1",
            "--folder",
            str(folder),
            "--device",
            "cpu",  # the rows below are the CPU's, also on a machine with a GPU
            "--out",
            str(out),
        ]
    )
    return rc, out, folder


@pytest.mark.slow
def test_report_written_and_consistent(bench_run):
    rc, out, _ = bench_run
    assert rc == 0
    assert {p.name for p in out.iterdir() if p.name != ".p2p-bench"} == {
        "report.json",
        "report.md",
        "latency.png",
        "throughput.png",
    }
    data = json.loads((out / "report.json").read_text())
    jsonschema.validate(data, REPORT_SCHEMA)
    rows = data["results"]
    # eager fp32 + ONNX Runtime on the temporary fp32 and fp16 exports, at both batches, and
    # OpenVINO on the fp32 export (fp32, and the bf16 hint where the CPU has bf16) when installed
    series = {(r["backend"], r["precision"]) for r in rows}
    ov = {s for s in series if s[0] == "openvino"}
    assert series - ov == {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16")}
    if importlib.util.find_spec("openvino") is not None:
        from p2p_deploy.runners.openvino_runner import cpu_bf16_supported

        assert ("openvino", "fp32") in ov and len(ov) == 1 + cpu_bf16_supported()
    assert len(rows) == 2 * (3 + len(ov))
    assert all(r["floor_pct"] > 0 for r in rows)  # each row against its own precision's floor
    base = {r["batch"]: r for r in rows if r["backend"] == "torch"}
    for r in rows:
        lat = r["latency_ms"]
        assert lat["p50"] <= lat["p90"] <= lat["p99"]
        if r["disturbed"] or base[r["batch"]]["disturbed"]:  # timed under load: no ratio
            assert r["speedup_vs_eager"] is None
        else:
            ratio = base[r["batch"]]["latency_ms"]["p50"] / lat["p50"]
            assert r["speedup_vs_eager"] == pytest.approx(ratio, rel=2e-3)
        assert r["max_abs_err"] is not None
    fp16 = [r for r in rows if r["precision"] == "fp16"]
    assert all(0 < r["max_abs_err"] < 0.05 for r in fp16)
    assert data["e2e"]["frames"] == 3
    # `p2p run`'s own pipeline, and the I/O ceiling at 1 worker and at the default workers
    assert data["e2e"]["workers"] >= 1 and "1" in data["e2e"]["io_ceiling"]
    assert data["e2e"]["bound_by"] in ("model", "decode", "encode", "copies")
    skipped = {s["label"]: s["reason"] for s in data["skipped"]}
    assert "CUDA" in skipped["torch fp16"]
    assert "--engine" in skipped["tensorrt"] or "not installed" in skipped["tensorrt"]
    assert data["command"].startswith("p2p bench --checkpoint ")


@pytest.mark.slow
def test_command_in_report_reproduces(bench_run):
    """The command printed in the report parses back to the same configuration."""
    _, out, _ = bench_run
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert data["command"] in md
    assert "--threads 1" in data["command"] and "--batch 1,2" in data["command"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--checkpoint", "/nonexistent/g.safetensors"],
            "/nonexistent/g.safetensors: no such file",
        ),
        ([], "nothing to benchmark"),
        (["--checkpoint", "{ckpt}", "--backends", "torch,magic"], "--backends 'magic': must be"),
        (["--checkpoint", "{ckpt}", "--device", "gpu"], "--device 'gpu': must be auto, cpu, cuda"),
        (["--onnx", "{garbage}"], "garbage.onnx: not an ONNX model"),  # as p2p run says
    ],
    ids=["missing", "nothing", "backend", "device", "not-a-model"],
)
def test_user_errors_are_one_line(tiny_checkpoint, tmp_path, capsys, args, message):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    names = {"{ckpt}": str(tiny_checkpoint), "{garbage}": str(garbage)}
    args = [names.get(a, a) for a in args]
    rc = main(["bench", *args, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    file_error = "no such file" in message or "not an ONNX" in message
    assert rc == (1 if file_error else 64)  # a file error, or a usage error
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_unreadable_video_is_refused_before_timing(tiny_checkpoint, tmp_path):
    """Checked up front (not after every row is timed), in one line without FFmpeg's own."""
    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video")
    res = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "bench", "-c", str(tiny_checkpoint)]
        + ["--video", str(bad), "--duration", "30", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert res.stderr == f"error: {bad}: unreadable video (FFmpeg cannot open it).\n"
    assert not (tmp_path / "r").exists()


def test_help_shows_paragraphs_not_docstring_line_breaks():
    res = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "and latency / throughput plots. Latency p50/p90/p99" in res.stdout


def test_bad_batch_is_a_usage_error(tmp_path):
    rc = main(["bench", "--batch", "1,x", "--out", str(tmp_path)])
    assert rc == 64


def test_help_is_real_and_cheap():
    res = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0
    for flag in (
        "--checkpoint",
        "--onnx",
        "--engine",
        "--backends",
        "--batch",
        "--warmup",
        "--duration",
        "--video",
        "--folder",
        "--out",
    ):
        assert flag in res.stdout
    code = "import sys, p2p_deploy.cli; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )


@pytest.mark.slow
def test_default_out_is_under_the_working_folder(tiny_checkpoint, tmp_path, monkeypatch):
    """Without --out the report goes to ./p2p-bench/<machine>-<date>/, never into the package."""
    import p2p_deploy

    monkeypatch.chdir(tmp_path)
    rc = main(
        [
            "bench",
            "--checkpoint",
            str(tiny_checkpoint),
            "--backends",
            "torch",
            "--batch",
            "1",
            "--warmup",
            "0.01",
            "--duration",
            "0.05",
            "--min-iters",
            "2",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    (report,) = (tmp_path / "p2p-bench").glob("*/report.json")
    assert json.loads(report.read_text())["results"]
    pkg = os.path.dirname(p2p_deploy.__file__)
    assert not list(Path(pkg).rglob("p2p-bench")), "nothing may be written inside the package"


def test_unwritable_out_fails_before_the_timing(tiny_checkpoint, tmp_path, capsys, read_only_dir):
    """Issue 11.6: the report is written after all the timing; its folder is checked first."""
    from p2p_deploy.bench.session import BenchArgs, validate
    from p2p_deploy.errors import UsageError

    a_file = tmp_path / "report.md"
    a_file.write_text("x")
    for out, reason in (
        (a_file, "exists and is not a folder"),
        (a_file / "r", "Not a directory"),
        (read_only_dir / "r", "Read-only file system"),
    ):
        # validate() runs before the model is even loaded, let alone timed.
        with pytest.raises(UsageError, match=reason):
            validate(BenchArgs(checkpoint=tiny_checkpoint, out=out))
        rc = main(["bench", "-c", str(tiny_checkpoint), "--duration", "60", "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 64 and err.startswith(f"error: --out {out}: ") and reason in err, err
        assert len(err.strip().splitlines()) == 1
    assert a_file.read_text() == "x" and list(read_only_dir.iterdir()) == []
