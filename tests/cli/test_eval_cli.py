"""`p2p eval` through the command line: summary lines, files, one-line errors, light --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from p2p_deploy.cli import main


def _dataset(root: Path, n: int = 3, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    (root / "test").mkdir(parents=True)
    for i in range(n):
        img = rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "test" / f"{i}.png"), img)
    return root


def test_eval_cli_with_baseline(
    capsys, tmp_path: Path, tiny_checkpoint: Path, tiny_onnx_fp32: Path
) -> None:
    data = _dataset(tmp_path / "d")
    out = tmp_path / "ev"
    code = main(
        [
            "eval",
            str(tiny_onnx_fp32),
            "--data",
            str(data),
            "--out",
            str(out),
            "--baseline",
            str(tiny_checkpoint),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "3 images of" in err and "mean: L1 " in err and "SSIM" in err
    assert "BtoA (" in err and "card)" in err  # from the exported model's card
    assert "model - baseline: L1 " in err and "largest per-image drop" in err
    assert f"grids (input | output | target): {out / 'best.png'}, {out / 'worst.png'}" in err
    report = json.loads((out / "eval.json").read_text())
    # ONNX Runtime against eager torch on the same weights: the same images within float noise.
    assert abs(report["baseline"]["difference"]["l1"]) < 1e-4
    assert sorted(p.name for p in out.iterdir() if p.name != ".p2p-eval") == [
        "best.png",
        "eval.csv",
        "eval.json",
        "worst.png",
    ]


def test_eval_cli_errors_are_one_line(capsys, tmp_path: Path, tiny_checkpoint: Path) -> None:
    code = main(["eval", str(tiny_checkpoint), "--data", str(tmp_path / "nope"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such data folder."
    ]
    data = _dataset(tmp_path / "d")
    code = main(["eval", str(tmp_path / "missing.onnx"), "--data", str(data), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "no such model file" in err and "Traceback" not in err


def test_eval_errors_with_the_progress_bar_on_are_one_line(
    capsys, tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    """The bar appears once there is work to show: an error found before (a missing model,
    an empty split) is its one line, with no empty bar above it."""
    data = _dataset(tmp_path / "d")
    (data / "empty").mkdir()
    cases = [
        ([str(tmp_path / "missing.onnx"), "--data", str(data)], "no such model file"),
        ([str(tiny_onnx_fp32), "--data", str(data), "--split", "empty"], "no images"),
    ]
    for args, says in cases:
        code = main(["eval", *args, "--out", str(tmp_path / "ev")])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("error: ") and says in err, err
        assert err.count("\n") == 1, err
    code = main(["eval", str(tiny_onnx_fp32), "--data", str(data), "--out", str(tmp_path / "ok")])
    err = capsys.readouterr().err
    assert code == 0 and "eval" in err.splitlines()[0] and "3/3" in err, err


def test_help_lists_data_and_eval_without_torch() -> None:
    code = (
        "import sys\n"
        "from p2p_deploy.cli import main\n"
        "for args in (['--help'], ['eval', '--help'], ['data', '--help'], ['data', 'download', "
        "'--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for word in ("data", "eval", "--baseline", "--limit", "--mirror", "Range"):
        assert word in r.stdout, word
