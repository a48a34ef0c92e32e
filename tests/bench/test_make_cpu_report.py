"""The one-command CPU report script, on tiny sizes only."""

from __future__ import annotations

import importlib.util
import json

import cv2
import pytest

from p2p_deploy.bench.make_cpu_report import bench_argv, main, make_checkpoint, make_images
from p2p_deploy.models.opening import open_model


def test_parts(tmp_path):
    ckpt = make_checkpoint(tmp_path / "generator.safetensors", ngf=8, image_size=32)
    loaded = open_model(ckpt)
    g = loaded.card.generator
    assert (g.ngf, g.image_size, g.norm) == (8, 32, "batch")
    paths = make_images(tmp_path / "images", count=3, size=32)
    assert len(paths) == 3
    for p in paths:
        img = cv2.imread(str(p))
        assert img is not None and img.shape == (32, 32, 3) and img.std() > 0
    argv = bench_argv(tmp_path, "1,4", 5, 30, None, ["--threads", "2"])
    assert argv[:3] == ["bench", "--checkpoint", str(ckpt)]
    onnx = [argv[i + 1] for i, a in enumerate(argv) if a == "--onnx"]
    assert [p.rsplit("/", 1)[1] for p in onnx] == [
        "model.onnx",
        "model_fp16.onnx",
        "model_int8.onnx",
    ]
    assert argv[-2:] == ["--threads", "2"] and "--out" not in argv


@pytest.mark.slow
def test_main_tiny_end_to_end(tmp_path):
    out = tmp_path / "report"
    rc = main(
        [
            "--workdir",
            str(tmp_path / "work"),
            "--ngf",
            "8",
            "--size",
            "32",
            "--images",
            "3",
            "--batch",
            "1",
            "--warmup",
            "0.02",
            "--duration",
            "0.05",
            "--out",
            str(out),
            "--",
            "--backends",
            "torch,openvino",
            "--threads",
            "1",
            "--min-iters",
            "3",
            "--quiet-wait",  # the last one wins: no waiting for a quiet machine here
            "0",
        ]
    )
    assert rc == 0
    data = json.loads((out / "report.json").read_text())
    side = json.loads((tmp_path / "work" / "export" / "model_int8.onnx.json").read_text())
    assert side["precision"] == "int8" and side["extra"]["calibration"]["source"].endswith("calib")
    rows = {(r["backend"], r["precision"]) for r in data["results"]}
    if importlib.util.find_spec("openvino") is None:
        assert rows == {("torch", "fp32")}
    else:  # OpenVINO on the fp32 and the INT8 export (the fp16 one gives no OpenVINO row)
        assert {("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8")} <= rows
    assert data["e2e"]["frames"] == 3 and data["config"]["folder"].endswith("images")
    assert data["config"]["quiet_wait"] == 0
