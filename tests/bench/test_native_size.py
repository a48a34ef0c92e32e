"""`p2p bench --size HxW` (the HD path, GFLOP and floor scaled to the frame) and `p2p eval
--resize native` (full-resolution outputs against full-resolution targets)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from runtime.media_files import random_bgr

from p2p_deploy.bench.eval import EvalOptions, run_eval
from p2p_deploy.bench.make_cpu_report import bench_argv, export_argv, sized_spatial
from p2p_deploy.bench.session import BenchArgs, run_bench, validate
from p2p_deploy.errors import UsageError
from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8
from p2p_deploy.media.resize import fit_native, restore
from p2p_deploy.models.flops import generator_flops
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.opening import open_model
from p2p_deploy.models.spatial import SpatialProfile

QUICK = {"warmup": 0.02, "duration": 0.08, "min_iters": 3, "quiet_wait": 0.0}


@pytest.fixture(scope="module")
def spatial_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    from p2p_deploy.export.onnx_export import export_onnx

    m = open_model(tiny_checkpoint)
    path = tmp_path_factory.mktemp("spatial_bench") / "model.onnx"
    export_onnx(m.generator(), path, card=m.card, spatial=SpatialProfile.parse("32:96x128:128"))
    return path


@pytest.mark.slow
def test_bench_size_times_whole_frames_with_scaled_flops(
    tmp_path, tiny_checkpoint, tiny_onnx_fp32, spatial_onnx
) -> None:
    folder = tmp_path / "hd"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.GaussianBlur(random_bgr(90, 120, i), (5, 5), 0))
    args = BenchArgs(
        checkpoint=tiny_checkpoint,
        onnx=[spatial_onnx, tiny_onnx_fp32],
        backends=["torch", "onnxruntime"],
        batch=[1],
        size="90x120",
        folder=folder,
        threads=1,
        out=tmp_path / "report",
        **QUICK,
    )
    report, paths = run_bench(args)
    rows = report["results"]
    assert {r["backend"] for r in rows} == {"torch", "onnxruntime"}
    cfg = open_model(tiny_checkpoint).card.generator
    gflop = generator_flops(cfg, (96, 128)) / 1e9
    for r in rows:
        assert r["frame"] == [96, 128]  # 90x120 padded to the stride 32
        assert r["gflop_per_frame"] == pytest.approx(gflop, rel=1e-3)
        assert r["max_abs_err"] is not None and r["max_abs_err"] <= 1e-4
    assert gflop == pytest.approx(12 * generator_flops(cfg) / 1e9)  # 12x the 32x32 pixels
    assert report["config"]["frame"] == [96, 128]
    assert report["config"]["compute_floor"]["frame"] == [96, 128]
    assert any(c.startswith("Frames of 90x120, run at 96x128") for c in report["conclusions"])
    # the fixed-square export cannot take the size: skipped, with the reason and the remedy
    skipped = [s["reason"] for s in report["skipped"]]
    assert any("takes exactly 32x32, not 96x128" in s and "--spatial" in s for s in skipped)
    # end to end: `p2p run --resize native` over the 90x120 images
    assert report["e2e"]["frames"] == 2
    md = paths["md"].read_text()
    assert "GFLOP per frame at 96x128" in md and "frames of 90x120" in md

    from jsonschema import validate as schema_validate

    from p2p_deploy.bench.schema import REPORT_SCHEMA

    schema_validate(json.loads(paths["json"].read_text()), REPORT_SCHEMA)


def test_bench_size_is_checked_up_front(tiny_checkpoint) -> None:
    with pytest.raises(UsageError, match="--size"):
        validate(BenchArgs(checkpoint=tiny_checkpoint, size="big"))


def test_hd_report_commands() -> None:
    assert sized_spatial((720, 1280), 256, 256) == "256:768x1280:1280x2048"
    w = Path("W")
    argv = export_argv(w, "720x1280", "256:768x1280:1280x2048")
    assert argv[-2:] == ["--spatial", "256:768x1280:1280x2048"] and "--fp16" not in argv
    assert argv[argv.index("--calib") + 1] == str(w / "calib-720x1280")
    bench = bench_argv(w, "1", 5, 30, None, [], "720x1280")
    assert bench[bench.index("--size") + 1] == "720x1280"
    onnx = [bench[i + 1] for i, a in enumerate(bench) if a == "--onnx"]
    assert onnx == [str(w / "export-720x1280" / "model.onnx"),
                    str(w / "export-720x1280" / "model_int8.onnx")]  # fmt: skip
    assert bench[bench.index("--folder") + 1] == str(w / "images-720x1280")
    assert "--size" not in bench_argv(w, "1,4", 5, 30, None, [])  # the 256 px report as before


# --- p2p eval --resize native ------------------------------------------------------------------


def _native_output(checkpoint: Path, label: np.ndarray) -> np.ndarray:
    """The generator's full-resolution output for a BGR label map (eager, padded, cropped)."""
    padded, geo = fit_native(label, 32)
    model = prepare_generator(open_model(checkpoint).generator(), "stats")
    with torch.inference_mode():
        y = model(torch.from_numpy(bgr8_to_tensor(padded))).numpy()
    return restore(tensor_to_bgr8(y)[0], geo, keep_size=True)


def test_eval_native_scores_full_resolution_outputs(tmp_path, tiny_checkpoint, tiny_onnx_fp32):
    """A dataset (A/ + B/ folders, several sizes) whose photos are the generator's own
    full-resolution outputs for its label maps: --resize native scores it almost perfectly
    (only uint8 rounding differs); fitting the halves to 32x32 (the default) cannot."""
    root = tmp_path / "data"
    for sub in ("A", "B"):
        (root / "test" / sub).mkdir(parents=True)
    for i, (h, w) in enumerate([(50, 70), (100, 33), (64, 64), (50, 70)]):
        label = cv2.GaussianBlur(random_bgr(h, w, i), (5, 5), 0)
        cv2.imwrite(str(root / "test" / "B" / f"{i}.png"), label)
        cv2.imwrite(str(root / "test" / "A" / f"{i}.png"), _native_output(tiny_checkpoint, label))
    res = run_eval(
        EvalOptions(
            tiny_checkpoint,
            root,
            out=tmp_path / "ev",
            resize="native",
            device="cpu",
            save_images=True,
            direction="BtoA",
            batch=4,
        )  # fmt: skip
    )
    m = res.model.mean()
    assert m["l1"] < 0.5 / 127.5 + 1e-6 and m["psnr_db"] > 48
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["resize"] == "native" and report["count"] == 4
    for i, (h, w) in enumerate([(50, 70), (100, 33), (64, 64), (50, 70)]):
        assert cv2.imread(str(tmp_path / "ev" / "outputs" / f"{i}.png")).shape == (h, w, 3)
    assert cv2.imread(str(tmp_path / "ev" / "best.png")) is not None  # mixed-size grid
    square = run_eval(
        EvalOptions(tiny_checkpoint, root, out=tmp_path / "sq", device="cpu", direction="BtoA")
    )
    assert square.model.mean()["l1"] > 5 * m["l1"]
    # a fixed-square export scores full resolution too, in blended 32x32 tiles
    tiled = run_eval(
        EvalOptions(tiny_onnx_fp32, root, out=tmp_path / "t", resize="native", direction="BtoA")
    )
    assert "tiles up to 32x32" in tiled.model.runner and tiled.model.mean()["psnr_db"] > 15
