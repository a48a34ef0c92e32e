"""`p2p export` end to end on tiny checkpoints: files, printed figures, exit codes, errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from google.protobuf import text_format

from p2p_deploy.cli import main

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["export", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_fp16_export_with_triton(tiny_checkpoint, tmp_path, capsys):
    out_dir, repo = tmp_path / "out", tmp_path / "triton"
    code, out, err = _run(
        capsys, tiny_checkpoint, "--out", out_dir, "--fp16", "--batch", "1:2:8", "--triton", repo
    )
    assert code == 0, err
    names = sorted(p.name for p in out_dir.iterdir())
    expected = ["model.onnx", "model.onnx.json", "model_fp16.onnx", "model_fp16.onnx.json"]
    if HAS_TRT:
        expected += ["model_fp16.plan", "model_fp16.plan.json"]
    assert names == sorted(expected)  # no staging folder or temp file left behind
    assert "parity  model.onnx (fp32, stats): max abs err" in out
    assert "parity  model_fp16.onnx (fp16, stats): PSNR" in out and out.count(": ok") == 2
    if not HAS_TRT:
        skipped = [line for line in out.splitlines() if "engine skipped" in line]
        assert len(skipped) == 1 and 'pip install "p2p-deploy[gpu]"' in skipped[0]
    side = json.loads((out_dir / "model_fp16.onnx.json").read_text())
    assert side["precision"] == "fp16" and side["extra"]["parity"]["passed"] is True
    model_config_pb2 = pytest.importorskip(
        "tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed (dev extra)"
    )
    cfg = text_format.Parse(
        (repo / "p2p_generator" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert cfg.max_batch_size == 8
    assert cfg.platform == ("tensorrt_plan" if HAS_TRT else "onnxruntime_onnx")


def test_no_engine_is_silent_and_running_mode(tiny_checkpoint, tmp_path, capsys):
    code, out, err = _run(
        capsys,
        tiny_checkpoint,
        "--out",
        tmp_path,
        "--fp16",
        "--no-engine",
        "--test-norm",
        "running",
        "--skip-parity",
    )
    assert code == 0, err
    assert "engine skipped" not in out and "parity" not in out
    assert json.loads((tmp_path / "model.onnx.json").read_text())["test_norm"] == "running"
    assert not list(tmp_path.glob("*.plan"))


@pytest.mark.skipif(HAS_TRT, reason="checks the error where tensorrt is absent")
@pytest.mark.parametrize("flag", ["--engine", "--fp32-engine"])
def test_explicit_engine_without_tensorrt_fails(tiny_checkpoint, tmp_path, capsys, flag):
    code, out, err = _run(capsys, tiny_checkpoint, "--out", tmp_path / "o", flag)
    assert code != 0
    assert err.startswith("error: model_fp") and "tensorrt is not installed" in err
    assert len(err.strip().splitlines()) == 1


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.safetensors", "no such model file or folder"),
        (lambda d: _write(d / "junk.pth", b"hello"), "not a torch checkpoint"),
        (lambda d: _write(d / "w.safetensors", b"\x00" * 3), "no card w.json beside it"),
    ],
)
def test_bad_checkpoints_one_line(tmp_path, capsys, make, message):
    ckpt = make(tmp_path)
    code, out, err = _run(capsys, ckpt, "--out", tmp_path / "o")
    assert code == 1 and message in err and str(ckpt.name) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_truncated_safetensors(tiny_checkpoint, tmp_path, capsys):
    weights = tmp_path / "generator.safetensors"
    data = tiny_checkpoint.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    (tmp_path / "generator.json").write_text(tiny_checkpoint.with_suffix(".json").read_text())
    code, _, err = _run(capsys, weights, "--out", tmp_path / "o")
    assert code == 1 and "corrupt or truncated" in err and len(err.strip().splitlines()) == 1


def test_unwritable_out_and_bad_flags(tiny_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = _run(capsys, tiny_checkpoint, "--out", blocker)
    assert code == 64 and "a_file: output path exists and is not a folder" in err
    code, _, err = _run(capsys, tiny_checkpoint, "--out", blocker / "sub")
    assert code == 64 and "output folder cannot be written" in err

    code, _, err = _run(capsys, tiny_checkpoint, "--out", tmp_path / "o", "--batch", "8:4:1")
    assert code == 64 and "--batch '8:4:1'" in err
    code, _, err = _run(capsys, tiny_checkpoint, "--out", tmp_path / "o", "--opset", "13")
    assert code == 64 and "opset 13 is too old" in err
    code, _, err = _run(capsys, tiny_checkpoint, "--out", tmp_path / "o", "--io", "fp16")
    assert code == 64 and "--io fp16 needs --fp16" in err
    code, _, _ = _run(capsys, tiny_checkpoint, "--test-norm", "batch")
    assert code == 64  # usage error
    assert not (tmp_path / "o" / "model.onnx").exists()


def test_help_is_real(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for flag in (
        "--fp16",
        "--io",
        "--opset",
        "--batch",
        "--test-norm",
        "--no-engine",
        "--fp32-engine",
        "--workspace",
        "--timing-cache",
        "--version-compatible",
        "--hardware-compatible",
        "--triton",
        "--skip-parity",
    ):
        assert flag in out


def test_opset_newer_than_onnx_and_bad_workspace(tiny_checkpoint, tmp_path, capsys):
    # --opset 99 used to write an opset-18 graph (the converter's fallback warning is silenced)
    # and exit 0; bad flags are now refused before the output folder is created.
    out_dir = tmp_path / "o"
    code, _, err = _run(capsys, tiny_checkpoint, "--out", out_dir, "--opset", "99")
    assert code == 64 and "opset 99 is newer than this onnx" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, tiny_checkpoint, "--out", out_dir, "--workspace", "-1")
    assert code == 64 and "--workspace -1.0: must be a positive number" in err
    assert not out_dir.exists()


def test_pickled_module_and_truncated_pth_one_line(tmp_path, capsys):
    import torch

    whole = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Conv2d(3, 3, 3), whole)
    code, _, err = _run(capsys, whole, "--out", tmp_path / "o")
    # torch's own text asks to retry with weights_only=False, in terminal escape codes.
    assert code == 1 and "holds pickled Python objects" in err and "\x1b" not in err
    assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1
    # Issue 11 (messages): a truncated .pth said "[Errno 22] Invalid argument" or torch's zip
    # internals, random bytes "holds pickled Python objects".
    data = whole.read_bytes()
    for n in (200, len(data) // 2, len(data) - 1):
        cut = tmp_path / "cut.pth"
        cut.write_bytes(data[:n])
        code, _, err = _run(capsys, cut, "--out", tmp_path / "o")
        assert code == 1 and err.startswith(f"error: {cut}: truncated torch checkpoint ("), err
        assert len(err.strip().splitlines()) == 1
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(64)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-40])
    code, _, err = _run(capsys, legacy, "--out", tmp_path / "o")
    assert code == 1 and "corrupt or truncated torch checkpoint (" in err, err
    rng = np.random.default_rng(0)
    for i in range(5):
        noise = tmp_path / f"noise{i}.pth"
        noise.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        code, _, err = _run(capsys, noise, "--out", tmp_path / "o")
        assert code == 1 and f"{noise}: not a torch checkpoint (neither the zip" in err, err
        assert "pickled Python objects" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _sha(path) -> str:
    return json.loads((path.parent / (path.name + ".json")).read_text())["checkpoint_sha256"]


@pytest.mark.slow
def test_export_into_another_export_is_refused_then_replaced_whole(
    tiny_checkpoint, tmp_path, capsys
):
    """Issue 11.4: checkpoint A with --fp16, then B without it, must not leave A's
    model_fp16.onnx beside B's model.onnx."""
    from helpers import make_tiny_generator, save_checkpoint

    from p2p_deploy.models.weights import file_sha256

    other = save_checkpoint(make_tiny_generator(seed=1), tmp_path / "b" / "generator.safetensors")
    out = tmp_path / "o"
    code, _, err = _run(capsys, tiny_checkpoint, "--out", out, "--fp16", "--skip-parity")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"model.onnx", "model_fp16.onnx"} <= set(before)

    code, _, err = _run(capsys, other, "--out", out, "--skip-parity")
    assert code == 64 and "holds an export of another checkpoint (model.onnx, model_fp16" in err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched

    code, _, err = _run(capsys, other, "--out", out, "--skip-parity", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.json"]
    assert _sha(out / "model.onnx") == file_sha256(other) != file_sha256(tiny_checkpoint)
    # The same checkpoint again, now with --fp16: its own earlier set is replaced whole.
    code, _, err = _run(capsys, other, "--out", out, "--skip-parity", "--fp16")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".onnx")
    assert names == ["model.onnx", "model_fp16.onnx"]
    assert {_sha(out / n) for n in names} == {file_sha256(other)}


def test_triton_at_a_file_fails_before_any_work(tiny_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "triton_file"
    blocker.write_text("x")
    out = tmp_path / "o"
    for triton in (blocker, blocker / "repo"):
        code, _, err = _run(capsys, tiny_checkpoint, "--out", out, "--triton", triton)
        assert code == 64 and f"--triton {triton}" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not out.exists()  # checked before model.onnx was written
