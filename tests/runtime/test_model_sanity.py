"""Models that are not what they claim (issue 20, class 4): a foreign ONNX (wrong input count,
rank, size or output shape), a uint8 input, weights or outputs holding NaN/inf, a corrupt card:
one line naming the file and what is wrong, before any work; no OpenVINO log lines before it;
eval.json never holds a bare NaN; `p2p export --int8` without usable calibration images fails
before the fp32 model is written. The one model sanity check: ``p2p_deploy.models.sanity``.
Real ONNX files built with onnx.helper, the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from runtime.media_files import random_bgr, write_video

from p2p_deploy.deps import available
from p2p_deploy.models.card import card_path

needs_openvino = pytest.mark.skipif(not available("openvino"), reason="openvino not installed")


def _model(
    path: Path,
    inputs: list[tuple[str, int, list]],
    outputs: list[tuple[str, int, list]],
    nodes: list,
    inits: list | None = None,
) -> Path:
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=inits or [],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


F, U8 = TensorProto.FLOAT, TensorProto.UINT8
IMG = ["N", 3, 32, 32]


def foreign(tmp_path: Path, kind: str) -> Path:
    """Foreign ONNX models, each wrong in one way."""
    p = tmp_path / f"{kind}.onnx"
    if kind == "two_inputs":
        return _model(p, [("input", F, IMG), ("mask", F, IMG)], [("output", F, IMG)],
                      [helper.make_node("Add", ["input", "mask"], ["output"])])  # fmt: skip
    if kind == "rank3":
        return _model(p, [("input", F, ["N", 32, 32])], [("output", F, ["N", 32, 32])],
                      [helper.make_node("Identity", ["input"], ["output"])])  # fmt: skip
    if kind == "not_square":
        shape = ["N", 3, 32, 64]
        return _model(p, [("input", F, shape)], [("output", F, shape)],
                      [helper.make_node("Identity", ["input"], ["output"])])  # fmt: skip
    if kind == "gray_output":
        gray = helper.make_node("ReduceMean", ["input"], ["output"], axes=[1])
        return _model(p, [("input", F, IMG)], [("output", F, ["N", 1, 32, 32])], [gray])
    if kind == "uint8":
        return _model(p, [("input", U8, IMG)], [("output", U8, IMG)],
                      [helper.make_node("Identity", ["input"], ["output"])])  # fmt: skip
    if kind == "nan_weights":
        w = numpy_helper.from_array(np.full((1, 3, 1, 1), np.nan, np.float32), "w")
        return _model(p, [("input", F, IMG)], [("output", F, IMG)],
                      [helper.make_node("Add", ["input", "w"], ["output"])], [w])  # fmt: skip
    if kind == "nan_outputs":  # finite weights, but sqrt(x - 2) of images in [-1, 1]
        two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
        return _model(p, [("input", F, IMG)], [("output", F, IMG)],
                      [helper.make_node("Sub", ["input", "two"], ["d"]),
                       helper.make_node("Sqrt", ["d"], ["output"])], [two])  # fmt: skip
    if kind == "identity":
        return _model(p, [("input", F, IMG)], [("output", F, IMG)],
                      [helper.make_node("Identity", ["input"], ["output"])])  # fmt: skip
    raise ValueError(kind)


def p2p(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2p_deploy", *args], capture_output=True,
                          text=True, timeout=180)  # fmt: skip


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"{i}.png"), random_bgr(32, 32, i))
    return src


BACKENDS = ["onnxruntime", pytest.param("openvino", marks=needs_openvino)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("two_inputs", "has 2 input(s) (input, mask) and 1 output(s)"),
        ("rank3", "input 'input' has shape (?, 32, 32), not (N, 3, S, S)"),
        ("not_square", "input 'input' is 32x64; a generator takes S x S"),
        ("gray_output", "output 'output' has shape (?, 1, 32, 32), not (N, 3, 32, 32)"),
        ("uint8", "input 'input' is uint8; a generator takes float32 or float16"),
        ("nan_weights", "weights hold NaN or inf (3 value(s) in w)"),
    ],
)
def test_foreign_models_are_one_line_before_any_work(
    tmp_path: Path, images: Path, backend: str, kind: str, says: str
) -> None:
    model = foreign(tmp_path, kind)
    out = tmp_path / "out"
    r = p2p("run", str(images), "-e", str(model), "--backend", backend, "-o", str(out),
            "--no-progress")  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr == f"error: {model}: {says}.\n" or (
        r.stderr.count("\n") == 1 and says in r.stderr
    ), r.stderr
    assert not out.exists()  # before any work: no output folder, no marker


def test_a_card_that_disagrees_with_the_graph(tmp_path: Path, images: Path, tiny_onnx_fp32: Path):
    model = tmp_path / "model.onnx"
    _model(model, [("input", F, ["N", 3, 64, 64])], [("output", F, ["N", 3, 64, 64])],
           [helper.make_node("Identity", ["input"], ["output"])])  # fmt: skip
    shutil.copy(card_path(tiny_onnx_fp32), card_path(model))  # says 32 px
    r = p2p("run", str(images), "-e", str(model), "-o", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 1 and "graph input is 64 px but its card says 32" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (b"\x89PNG\x00\xff binary", "not a card (binary, not JSON text)"),
        (b"[1, 2]", "not a card (a JSON list, not an object)"),
        (None, "field 'image_size' must be a whole number, got '32'"),
    ],
    ids=["binary", "list", "string-for-number"],
)
def test_corrupt_or_hand_edited_cards(
    tmp_path: Path, images: Path, tiny_onnx_fp32: Path, text: bytes | None, says: str
) -> None:
    model = tmp_path / "model.onnx"
    shutil.copy(tiny_onnx_fp32, model)
    card = json.loads(card_path(tiny_onnx_fp32).read_text())
    if text is None:
        card["generator"]["image_size"] = "32"
        text = json.dumps(card).encode()
    card_path(model).write_bytes(text)
    r = p2p("run", str(images), "-e", str(model), "-o", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"{card_path(model)}" in r.stderr and says in r.stderr, r.stderr


@pytest.mark.slow
def test_nan_outputs_write_nothing_and_eval_json_stays_json(
    tmp_path: Path, images: Path
) -> None:
    model = foreign(tmp_path, "nan_outputs")
    out = tmp_path / "out"
    r = p2p("run", str(images), "-e", str(model), "--backend", "onnxruntime", "-o", str(out),
            "--no-progress")  # fmt: skip
    assert r.returncode == 1 and "the model's output holds NaN or inf" in r.stderr, r.stderr
    assert not list(out.rglob("*.png")) if out.exists() else True  # no black images
    split = tmp_path / "data" / "test"
    split.mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(split / f"{i}.png"), random_bgr(32, 64, i))
    e = tmp_path / "e"
    r = p2p("eval", str(model), "--data", str(tmp_path / "data"), "--out", str(e),
            "--direction", "AtoB", "--no-progress")  # fmt: skip
    assert r.returncode == 1 and r.stderr.count("failed: ") == 2, r.stderr  # none scored
    report = json.loads((e / "eval.json").read_text(), parse_constant=_no_nan)
    assert report["mean"] == {"l1": None, "psnr_db": None, "ssim": None}
    assert report["failed"] == 2 and "holds NaN or inf" in report["failures"][0]["reason"]
    # Whatever a report holds, it is JSON: non-finite numbers are written as null.
    from p2p_deploy.atomic import write_json

    write_json(e / "x.json", {"psnr": float("nan"), "rows": [float("inf"), 1.5]})
    assert json.loads((e / "x.json").read_text(), parse_constant=_no_nan) == {
        "psnr": None, "rows": [None, 1.5]
    }  # fmt: skip


def _no_nan(name: str) -> float:
    raise AssertionError(f"eval.json holds a bare {name}: not JSON")


@needs_openvino
def test_no_openvino_log_line_before_the_error(tmp_path: Path, images: Path) -> None:
    model = tmp_path / "custom.onnx"
    graph = helper.make_graph(
        [helper.make_node("Foo", ["input"], ["output"], domain="my.domain")], "g",
        [helper.make_tensor_value_info("input", F, IMG)],
        [helper.make_tensor_value_info("output", F, IMG)],
    )  # fmt: skip
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("my.domain", 1)])  # fmt: skip
    m.ir_version = 8
    onnx.save(m, model)
    r = p2p("run", str(images), "-e", str(model), "--backend", "openvino", "-o",
            str(tmp_path / "o"), "--no-progress")  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {model}: OpenVINO cannot")
    assert "No conversion rule found for operations: my.domain.Foo" in r.stderr


@pytest.mark.slow
def test_int8_without_usable_calibration_fails_before_the_fp32_model(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.avi", 3)
    out = tmp_path / "export"
    r = p2p("export", str(tiny_checkpoint), "--out", str(out), "--int8", "--calib", str(videos))
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"{videos}: --calib holds only videos (1 video(s)" in r.stderr
    assert not out.exists()  # no model.onnx: nothing was written
    # Without --calib, a checkpoint whose card names no training data needs one: said first.
    r = p2p("export", str(tiny_checkpoint), "--out", str(out), "--int8")
    assert r.returncode == 1 and "give --calib DIR" in r.stderr and not out.exists(), r.stderr
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for n in ("a.png", "b.png"):
        (corrupt / n).write_bytes(b"not an image")
    r = p2p("export", str(tiny_checkpoint), "--out", str(out), "--int8", "--calib", str(corrupt))
    assert r.returncode == 1 and "(2 image file(s), 0 readable)" in r.stderr, r.stderr
    assert not out.exists()


def test_a_foreign_model_that_passes_is_still_run(tmp_path: Path, images: Path) -> None:
    """The checks refuse what is wrong, not what is foreign: an identity 'generator' of the
    right I/O runs."""
    model = foreign(tmp_path, "identity")
    r = p2p("run", str(images), "-e", str(model), "--backend", "onnxruntime", "-o",
            str(tmp_path / "o"), "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    a = cv2.imread(str(images / "0.png"))
    b = cv2.imread(str(tmp_path / "o" / "0.png"))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
