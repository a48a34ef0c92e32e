"""`p2p run` end to end through the CLI entry point, on the torch and ONNX Runtime runners,
with real image folders and videos on disk."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import sigint_as_ctrl_c
from runtime.media_files import BAD_IMAGES, GOOD_IMAGES, make_image_tree, random_bgr, write_video

from p2p_deploy.cli import main
from p2p_deploy.media.files import OUTPUT_MARKER
from p2p_deploy.media.video import codec_works


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "imgs"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), random_bgr(40, 30, 0))
    cv2.imwrite(str(src / "sub" / "b.png"), random_bgr(32, 32, 1))
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "readme.md").write_text("ignored")
    return src


def _files(root: Path) -> list[str]:
    """Every file under ``root`` (relative), but the output folder's marker."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != OUTPUT_MARKER
    )


def _names(root: Path) -> list[str]:
    """The names in ``root``, but the output folder's marker."""
    return sorted(p.name for p in root.iterdir() if p.name != OUTPUT_MARKER)


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args, "--no-progress"])
    return code, capsys.readouterr().err


def test_warmup_uses_the_runs_batch(
    capsys, monkeypatch, folder: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """With --cuda-graphs (or --compile, or on a GPU) the runner is warmed up before the first
    frame at the run's --batch: the shape the run captures, compiles and autotunes."""
    from p2p_deploy.runners.base import Runner

    sizes: list[int | None] = []
    real = Runner.warmup

    def spy(self, batch=None, size=None):
        sizes.append(batch)
        return real(self, batch, size)

    monkeypatch.setattr(Runner, "warmup", spy)
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(folder), "-e", str(tiny_checkpoint), "-o", str(out), "-b", "3",
        "--cuda-graphs", "--device", "cpu",
    )  # fmt: skip
    assert code == 2 and "warm-up" in err, err
    assert sizes == [3]


@pytest.mark.parametrize("model", ["tiny_checkpoint", "tiny_onnx_fp32"])
def test_folder_exit_codes_rerun_and_overwrite(
    request, capsys, folder: Path, tmp_path: Path, model: str
) -> None:
    engine = request.getfixturevalue(model)
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(folder), "--engine", str(engine), "--out", str(out), "--batch", "2"
    )
    assert code == 2, err
    assert f"failed: {folder / 'sub' / 'broken.png'}" in err
    assert "done 2, skipped 0" in err and "ignored 1" in err and "fps end to end" in err
    files = _files(out)
    assert files == ["a.jpg", "failures.json", "sub/b.png"]  # no temp files left
    assert cv2.imread(str(out / "a.jpg")).shape == (40, 30, 3)
    assert json.loads((out / "failures.json").read_text())["failed"] == 1

    # A rerun: the two outputs are skipped, the broken file fails again, nothing is translated
    # (no speed is stated for nothing).
    code, err = _run(capsys, str(folder), "--engine", str(engine), "--out", str(out))
    assert code == 2 and "no frames translated" in err and "fps" not in err, err
    (folder / "sub" / "broken.png").unlink()
    before = (out / "a.jpg").stat().st_mtime_ns
    code, err = _run(capsys, str(folder), "--engine", str(engine), "--out", str(out))
    assert code == 0 and "skipping 2 existing outputs" in err and "nothing to do" in err
    assert not (out / "failures.json").exists()  # this run failed nothing
    code, err = _run(
        capsys, str(folder), "-e", str(engine), "-o", str(out), "--overwrite", "--model-size"
    )
    assert code == 0 and "done 2" in err, err
    assert (out / "a.jpg").stat().st_mtime_ns != before
    assert cv2.imread(str(out / "a.jpg")).shape == (32, 32, 3)


def test_video_side_by_side_crop(capsys, tmp_path: Path, tiny_onnx_fp16: Path) -> None:
    clip = write_video(tmp_path / "clip.mov", 5, fps=10.0, size=(48, 36), codec="mp4v")
    code, err = _run(
        capsys,
        str(clip),
        "-e",
        str(tiny_onnx_fp16),
        "--side-by-side",
        "--resize",
        "crop",
        "-b",
        "4",
    )
    assert code == 0, err
    out = tmp_path / "clip_p2p" / "clip.mp4"
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and cap.get(cv2.CAP_PROP_FPS) == 10.0
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        72,
        36,
    )
    ok, frame = cap.read()
    cap.release()
    assert (
        ok and np.abs(frame[:, :36].astype(int) - frame[:, 36:].astype(int)).mean() > 5
    )  # translated


def test_codec_that_cannot_open_is_one_line(capsys, tmp_path: Path, tiny_checkpoint: Path) -> None:
    if codec_works("avc1", ".mp4"):
        pytest.skip("this OpenCV build writes H.264 (avc1)")
    clip = write_video(tmp_path / "clip.avi", 3)
    code, err = _run(capsys, str(clip), "-e", str(tiny_checkpoint), "--codec", "avc1")
    assert code == 1
    assert "codec 'avc1' cannot open" in err and "codecs that work: mp4v" in err
    assert _files(tmp_path / "clip_p2p") == ["failures.json"]  # the folder the write tried


def test_a_lone_bad_input_leaves_no_output_folder(capsys, tmp_path: Path, tiny_onnx_fp32: Path):
    """A single input that fails before any write is attempted: its one line says why, and
    no `<name>_p2p/` folder is made beside it to hold the list of that one failure."""
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    code, err = _run(capsys, str(bad), "-e", str(tiny_onnx_fp32))
    assert code == 1 and f"failed: {bad}" in err, err
    assert "nothing written" in err and "failures listed" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png"]


def test_user_errors_are_one_line_exit_1(
    capsys, folder: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    cases = [
        ([str(folder), "-e", str(tmp_path / "nope.onnx")], "no such model"),
        ([str(folder), "-e", str(tiny_checkpoint), "-o", str(folder)], "equals the input folder"),
        (
            [str(folder), "-e", str(tiny_checkpoint), "-o", str(folder / "x")],
            "inside the input folder",
        ),
        ([str(tmp_path / "missing"), "-e", str(tiny_checkpoint)], "no such file"),
        ([str(folder), "-e", str(tiny_checkpoint), "--resize", "zoom"], "--resize 'zoom': must be"),
        (
            [str(folder), "-e", str(tiny_checkpoint), "--threads", "2"],
            "applies to the onnxruntime runner",
        ),
    ]
    usage = ("--resize 'zoom': must be", "applies to the onnxruntime runner")
    for args, msg in cases:
        code, err = _run(capsys, *args)
        assert code == (64 if msg in usage else 1) and msg in err, (args, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    bad_ckpt = tmp_path / "bad.safetensors"
    bad_ckpt.write_bytes(b"garbage")
    code, err = _run(capsys, str(folder), "-e", str(bad_ckpt), "-o", str(tmp_path / "o2"))
    assert code == 1 and "bad.safetensors" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("backend", "precision", "takes"),
    [("openvino", "fp16", "fp32 or bf16"), ("torch", "bf16", "fp32 or fp16")],
)
def test_precision_the_runner_does_not_take_is_a_usage_error(
    request, capsys, folder: Path, tmp_path: Path, backend: str, precision: str, takes: str
) -> None:
    """A --precision the chosen runner does not take is the command line's fault: one line
    naming the flag, exit 64, before the runner starts."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    name = "tiny_onnx_fp32" if backend == "openvino" else "tiny_checkpoint"
    model = request.getfixturevalue(name)
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(folder), "-e", str(model), "-o", str(out), "--backend", backend,
        "--precision", precision,
    )  # fmt: skip
    assert code == 64, err
    assert err == f"error: --precision {precision!r}: the {backend} runner takes {takes}.\n"
    assert not out.exists()


def test_openvino_on_a_gpu_is_a_usage_error_before_any_work(
    capsys, folder: Path, tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    """--backend openvino with --device cuda cannot go together: one line naming both, exit
    64, before the output folder is planned (no "skipping ..." line above it)."""
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(folder), "-e", str(tiny_onnx_fp32), "-o", str(out), "--backend", "openvino",
        "--device", "cuda",
    )  # fmt: skip
    assert code == 64, err
    assert err == (
        "error: --device cuda: the openvino backend runs on the CPU; use --device cpu, or "
        "--backend onnxruntime or tensorrt for a GPU.\n"
    )
    assert not out.exists()


def test_good_and_bad_images_named_one_per_line(
    capsys, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    image_tree_cli = make_image_tree(tmp_path / "photos")
    code, err = _run(
        capsys,
        str(image_tree_cli),
        "-e",
        str(tiny_checkpoint),
        "-o",
        str(tmp_path / "o"),
        "-b",
        "3",
    )
    assert code == 2
    for bad in BAD_IMAGES:
        assert str(image_tree_cli / bad) in err
    assert f"done {len(GOOD_IMAGES)}" in err


def _p2p_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "p2p_deploy", "run", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_ctrl_c,
    )


@pytest.mark.slow
def test_ctrl_c_says_interrupted_keeps_no_partial_video_and_rerun_completes(
    capsys, tmp_path: Path, tiny_onnx_fp32: Path, tiny_checkpoint: Path
) -> None:
    clip = write_video(tmp_path / "clip.avi", 1200, size=(160, 120))
    out = tmp_path / "out"
    # The eager torch runner, batch 1: a few ms a frame, so the 1200 frames take seconds and the
    # signal surely lands mid-video even when this (polling) process is scheduled late; ONNX
    # Runtime can finish a short clip before a busy machine delivers it.
    proc = _p2p_process(str(clip), "-e", str(tiny_checkpoint), "-o", str(out), "--batch", "1")
    deadline = time.monotonic() + 60
    while not list(out.glob(".clip.*.tmp.mp4")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)  # mid-video: its temporary file exists
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1].startswith("interrupted: finished files are kept"), err
    assert "Traceback" not in err
    assert not out.exists() or _files(out) == []  # no half video, no temp file

    code, err = _run(capsys, str(clip), "-e", str(tiny_onnx_fp32), "-o", str(out))
    assert code == 0 and "done 1" in err, err
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 1200
    cap.release()
    umask = os.umask(0)
    os.umask(umask)
    # renamed from a mkstemp file (0600): must get the mode images get, not stay private
    assert stat.S_IMODE((out / "clip.mp4").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
def test_bad_files_give_only_our_lines_on_stderr(tmp_path: Path, tiny_onnx_fp32: Path) -> None:
    """FFmpeg/OpenCV print their own complaints ("moov atom not found", "[ WARN:0@...]", "tag
    'XXXX' is not found") straight to stderr; each bad file must be one line of ours only."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "text.mp4").write_text("not a video")
    good = write_video(tmp_path / "good.avi", 3)
    (src / "cut.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 64)
    png = cv2.imencode(".png", random_bgr(24, 24, 0))[1].tobytes()
    (src / "cut.png").write_bytes(png[: len(png) // 2])
    (src / "ok.png").write_bytes(png)
    proc = _p2p_process(str(src), "-e", str(tiny_onnx_fp32), "-o", str(tmp_path / "o"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    ours = ("model: ", "failed: ", "done ", "failures listed in ", "outputs in ")
    assert [ln for ln in err.splitlines() if not ln.startswith(ours)] == [], err
    assert err.count("failed: ") == 3

    proc = _p2p_process(str(good), "-e", str(tiny_onnx_fp32), "--codec", "XXXX")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert [ln for ln in err.splitlines() if not ln.startswith(ours)] == [], err
    assert "codec 'XXXX' cannot open" in err and "codecs that work: mp4v" in err


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="onnxruntime here has a CUDA provider",
)
def test_device_cuda_without_ort_cuda_is_one_plain_sentence(
    capsys, folder: Path, tiny_onnx_fp32: Path, tmp_path: Path
) -> None:
    code, err = _run(
        capsys,
        str(folder),
        "-e",
        str(tiny_onnx_fp32),
        "-o",
        str(tmp_path / "o"),
        "--device",
        "cuda",
    )
    assert code == 1
    assert err.startswith("error: device cuda requested but onnxruntime has no CUDA provider")
    assert 'pip install "p2p-deploy[gpu]"' in err and "cannot load this model" not in err


def test_help_shows_every_default() -> None:
    """A "[default: ...]" inside a help string is rich markup: it vanished from --help."""
    res = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert res.returncode == 0
    assert "INPUT" in res.stdout  # the README's name, not "input"
    for default in (
        "<input>_p2p beside the input",
        "the GPU when there is one",
        "from the checkpoint",
        "fp16 on CUDA, fp32 on CPU",
        "physical cores",
        "[default: mp4v]",
    ):
        assert default in res.stdout, default
    assert "writes are atomic. Inputs that fail are listed" in res.stdout  # one paragraph


# ids: a bare "gpu" id would match the gpu marker's keyword and be skipped without a GPU
@pytest.mark.parametrize(
    "device",
    ["gpu", "CPU", "cuda:x", "cuda:", "cuda:-1"],
    ids=["word", "upper", "letter", "empty", "negative"],
)
def test_bad_device_is_one_line(
    capsys, folder: Path, tmp_path: Path, tiny_onnx_fp32: Path, device: str
) -> None:
    code, err = _run(
        capsys,
        str(folder),
        "-e",
        str(tiny_onnx_fp32),
        "-o",
        str(tmp_path / "o"),
        "--device",
        device,
    )
    assert code == 64, err  # a bad value is a usage error (issue 20)
    assert err == f"error: --device {device!r}: must be cpu, cuda or cuda:N (N = 0, 1, ...).\n"


def test_truncated_video_fails_alone_and_is_redone(
    capsys, tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    full = write_video(tmp_path / "full.avi", 60).read_bytes()  # the header claims 60 frames
    (src / "cut.avi").write_bytes(full[: len(full) // 2])
    write_video(src / "good.avi", 5)
    out = tmp_path / "out"
    code, err = _run(capsys, str(src), "-e", str(tiny_onnx_fp32), "-o", str(out), "-b", "4")
    assert code == 2, err
    failed = [ln for ln in err.splitlines() if ln.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {src / 'cut.avi'}: decoded "), err
    assert "of 60 frames" in failed[0] and "done 1," in err
    assert _files(out) == ["failures.json", "good.mp4"]  # no partial
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert [f["path"] for f in failures] == [str(src / "cut.avi")]
    code, err = _run(capsys, str(src), "-e", str(tiny_onnx_fp32), "-o", str(out))
    assert code == 2 and "skipping 1 existing" in err and "decoded " in err  # retried, not skipped


def test_unwritable_video_output_fails_alone(capsys, tmp_path: Path, tiny_onnx_fp32: Path) -> None:
    """A real write failure that root cannot bypass: the video's output folder is a file."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_video(src / "a.avi", 3)
    write_video(src / "sub" / "b.avi", 3)
    cv2.imwrite(str(src / "c.png"), random_bgr(24, 24, 0))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the folder should be")
    code, err = _run(capsys, str(src), "-e", str(tiny_onnx_fp32), "-o", str(out))
    assert code == 2, err
    assert f"failed: {out / 'sub' / 'b.mp4'}: cannot write" in err and "Traceback" not in err
    assert "done 2," in err
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert [f["path"] for f in failures] == [str(src / "sub" / "b.avi")]
    assert _names(out) == ["a.mp4", "c.png", "failures.json", "sub"]


def test_unwritable_summary_json_fails_before_the_work(
    capsys, folder: Path, tmp_path: Path, tiny_onnx_fp32: Path, read_only_dir: Path
) -> None:
    """Issue 11.6: --summary-json at a folder or an unwritable path is one line and a usage
    exit code before any input is processed (it used to fail after all the work, exit 1)."""
    out = tmp_path / "out"
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for target, reason in (
        (tmp_path, "is a folder"),
        (a_file / "s.json", "Not a directory"),
        (read_only_dir / "s.json", "Read-only file system"),
    ):
        args = (str(folder), "-e", str(tiny_onnx_fp32), "-o", str(out))
        code, err = _run(capsys, *args, "--summary-json", str(target))
        assert code == 64 and err.startswith(f"error: --summary-json {target}: "), err
        assert reason in err and err.count("\n") == 1
        assert not out.exists()  # nothing was processed
