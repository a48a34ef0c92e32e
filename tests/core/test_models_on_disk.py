"""Models on disk: cards, the one reader, old files, the run-folder layout in one module."""

from __future__ import annotations

import ast
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_generator, save_checkpoint

from p2p_deploy.errors import P2PError
from p2p_deploy.models import layout
from p2p_deploy.models.card import ExportCard, ModelCard, TrainingInfo, read_card
from p2p_deploy.models.opening import open_model

REPO = Path(__file__).resolve().parents[2]
V1 = Path(__file__).resolve().parents[1] / "data" / "cards_v1"  # written by the version-1 code


def _atob_checkpoint(folder: Path) -> Path:
    path = folder / "checkpoints" / "latest" / "generator.safetensors"
    save_checkpoint(make_tiny_generator(seed=4), path, {"direction": "AtoB", "step": 5, "seed": 9})
    return folder


def test_checkpoint_card_roundtrip_and_sha(tmp_path: Path) -> None:
    from p2p_deploy.models.weights import file_sha256

    run = _atob_checkpoint(tmp_path / "run")
    m = open_model(run)
    assert m.kind == "checkpoint" and m.backend == "torch" and m.is_checkpoint
    assert m.file == run / "checkpoints" / "latest" / "generator.safetensors"
    assert m.card.direction == "AtoB" and m.card.training == TrainingInfo(step=5, seed=9)
    assert m.card.checkpoint_sha256 == file_sha256(m.file)  # hashed from the bytes read once
    d = json.loads(layout.card_path(m.file).read_text())
    assert d["format_version"] == 2 and d["direction"] == "AtoB" and d["training"]["step"] == 5
    assert m.generator().cfg == m.card.generator


@pytest.mark.slow
def test_version_1_cards_still_load(tmp_path: Path) -> None:
    """Cards written by the code before cards existed (direction and training at the top
    level of generator.json; no direction in model.onnx.json) load with what they held."""
    from p2p_deploy.export.onnx_export import export_onnx

    g = make_tiny_generator()
    ckpt = tmp_path / "run" / "checkpoints" / "latest"
    save_checkpoint(g, ckpt / "generator.safetensors")
    shutil.copy(V1 / "generator.json", ckpt / "generator.json")  # the old card replaces it
    m = open_model(tmp_path / "run")
    assert m.card.direction == "AtoB" and m.card.test_norm == "stats"
    assert m.card.training == TrainingInfo(
        data="synthetic", seed=3, step=12, epoch=1, val_l1=0.25, val_psnr=17.5
    )
    export_onnx(g, tmp_path / "model.onnx")
    shutil.copy(V1 / "model.onnx.json", tmp_path / "model.onnx.json")
    e = open_model(tmp_path / "model.onnx")
    assert isinstance(e.card, ExportCard) and e.card.precision == "fp32"
    assert e.card.direction is None  # version 1 did not record it
    assert e.card.generator == g.cfg and e.card.opset == 17


def _aligned_pairs(root: Path, n: int = 3, size: int = 32) -> Path:
    """``root/test/`` with ``n`` random A|B pairs (what `p2p eval` reads)."""
    import cv2

    (root / "test").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pair = rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "test" / f"{i}.png"), pair)
    return root


def test_export_carries_the_card_and_eval_scores_atob_without_a_warning(
    tmp_path: Path, caplog
) -> None:
    from p2p_deploy.bench.eval import EvalOptions, run_eval
    from p2p_deploy.export.command import run_export
    from p2p_deploy.export.options import ExportOptions

    run = _atob_checkpoint(tmp_path / "run")
    run_export(ExportOptions(run, tmp_path / "exp", engine=False))
    card = read_card(tmp_path / "exp" / "model.onnx")
    assert isinstance(card, ExportCard) and card.direction == "AtoB"
    assert card.training.step == 5 and card.checkpoint_sha256 == open_model(run).sha256
    with caplog.at_level(logging.WARNING):
        res = run_eval(
            EvalOptions(
                tmp_path / "exp" / "model.onnx", _aligned_pairs(tmp_path / "d"), out=tmp_path / "e"
            )  # fmt: skip
        )
    assert res.direction == "AtoB" and "card" in res.direction_source
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "binary"),
        (b"[1, 2]", "a JSON list"),
        (b"{not json", "not JSON"),
        (
            b'{"format": "p2p-deploy/generator", "format_version": 2, "test_norm": "stats"}',
            "no 'generator'",
        ),
    ],
)
def test_broken_cards_are_one_line_naming_the_file(tmp_path: Path, content: bytes, says: str):
    run = _atob_checkpoint(tmp_path / "run")
    card = run / "checkpoints" / "latest" / "generator.json"
    card.write_bytes(content)
    with pytest.raises(P2PError) as e:
        open_model(run)
    msg = str(e.value)
    assert "\n" not in msg and str(card) in msg and says in msg


def test_a_wrong_value_names_the_field(tmp_path: Path) -> None:
    run = _atob_checkpoint(tmp_path / "run")
    card = run / "checkpoints" / "latest" / "generator.json"
    d = json.loads(card.read_text())
    d["generator"]["ngf"] = "8"
    card.write_text(json.dumps(d))
    with pytest.raises(P2PError, match=r"field 'ngf' must be a whole number, got '8'"):
        open_model(run)
    d["generator"]["ngf"] = 8
    d["training"]["val_l1"] = "NaN"
    card.write_text(json.dumps(d))
    with pytest.raises(P2PError, match=r"field 'val_l1' must be a number"):
        open_model(run)
    d["training"]["val_l1"] = 0.1
    d["direction"] = "XtoY"
    card.write_text(json.dumps(d))
    with pytest.raises(P2PError, match=r"field 'direction' must be AtoB or BtoA"):
        open_model(run)


def test_nan_weights_are_refused_before_any_work(tmp_path: Path) -> None:
    import torch

    g = make_tiny_generator()
    with torch.no_grad():
        next(g.parameters())[0, 0, 0, 0] = float("nan")
    path = save_checkpoint(g, tmp_path / "generator.safetensors")
    with pytest.raises(P2PError, match="NaN or inf"):
        open_model(path)


def test_run_reads_the_model_once_and_opens_each_video_once(
    tmp_path: Path, tiny_onnx_fp32: Path, monkeypatch
) -> None:
    """`p2p run` reads the model file once (ONNX Runtime gets its bytes, not the path) and
    opens each input video once (no probe before the reader)."""
    import cv2
    import onnxruntime as ort
    from runtime.media_files import write_video

    from p2p_deploy.cli import main
    from p2p_deploy.media import video

    (tmp_path / "in").mkdir()
    clips = [write_video(tmp_path / "in" / f"c{i}.avi", 4, size=(48, 40)) for i in range(2)]
    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(tiny_onnx_fp32, model)
    shutil.copy(layout.card_path(tiny_onnx_fp32), layout.card_path(model))
    opens: list[str] = []
    watched = {str(model), str(layout.card_path(model))}

    def audit(event: str, args: tuple) -> None:
        if event == "open" and args and str(args[0]) in watched:
            opens.append(str(args[0]))

    sys.addaudithook(audit)  # cannot be removed: it only records opens of this test's files
    captures: list[str] = []
    real_capture = cv2.VideoCapture

    def counting_capture(path, *a):  # noqa: ANN001, ANN202
        captures.append(str(path))
        return real_capture(path, *a)

    monkeypatch.setattr(video.cv2, "VideoCapture", counting_capture)
    sessions: list[type] = []
    real_session = ort.InferenceSession

    def session(model_arg, *a, **kw):  # noqa: ANN001, ANN202
        sessions.append(type(model_arg))
        return real_session(model_arg, *a, **kw)

    monkeypatch.setattr(ort, "InferenceSession", session)
    out = tmp_path / "out"
    code = main(["run", str(tmp_path / "in"), "--engine", str(model), "--backend",
                 "onnxruntime", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    assert opens.count(str(model)) == 1 and opens.count(str(layout.card_path(model))) == 1
    assert sessions == [bytes]  # the session is built from the bytes read once
    for clip in clips:  # the reader's open; the writer re-reads only its own output file
        assert captures.count(str(clip)) == 1, captures
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".mp4") == ["c0.mp4", "c1.mp4"]


def test_layout_names_are_spelled_in_one_module() -> None:
    """No module but models/layout.py holds the run-folder names as string literals."""
    names = {
        layout.RUN_MARKER, layout.CONFIG_JSON, layout.CONFIG_TOML, layout.CHECKPOINTS,
        layout.LATEST, layout.BEST, layout.WEIGHTS_NAME, layout.CARD_NAME, layout.STATE_NAME,
        layout.CANONICAL_NAME, ".latest.old", ".latest.tmp",
    }  # fmt: skip
    found = []
    for folder in ("p2p_deploy", "train", "export", "bench"):
        for f in (REPO / folder).rglob("*.py"):
            if f == REPO / "p2p_deploy" / "models" / "layout.py":
                continue
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Constant) and node.value in names:
                    found.append(f"{f.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def test_card_types_are_checked_when_made() -> None:
    g = make_tiny_generator().cfg
    with pytest.raises(P2PError, match="direction"):
        ModelCard(generator=g, test_norm="stats", direction="sideways")
    card = ModelCard(generator=g, test_norm="stats", direction="AtoB")
    export = ExportCard.of(card, kind="onnx", precision="fp16")
    assert export.direction == "AtoB" and export.model_card == card
    assert np.isclose(export.image_size, 32)
