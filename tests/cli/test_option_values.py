"""Every option's value is checked where it is parsed (issue 20, class 6): finite, in range,
one of its choices, one spelling; a bad one is one ``error:`` line naming the flag, exit 64,
no traceback, nothing written. Table-driven, one table per command, through the real CLI.

The shared validator is ``p2p_deploy.options.check_value`` (fields declare their rules;
``validate`` runs them in each options dataclass, ``checked`` on typer-declared options).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from p2p_deploy.cli import main
from p2p_deploy.errors import EXIT_USAGE, UsageError
from p2p_deploy.options import check_value

RUN = ["run", "{tmp}/in", "-e", "{tmp}/m.onnx"]
BENCH = ["bench", "--checkpoint", "{tmp}/ckpt", "--out", "{tmp}/out"]
EVAL = ["eval", "{tmp}/m.onnx", "--data", "{tmp}/data", "--out", "{tmp}/out"]
EXPORT = ["export", "{tmp}/g.safetensors", "--out", "{tmp}/out"]
TRAIN = ["train", "--out", "{tmp}/out", "--no-progress"]
SYNTH = ["synth", "{tmp}/out"]
DOWNLOAD = ["data", "download", "facades", "--to", "{tmp}/out", "--no-progress"]

CASES = {
    "run": [
        (["--backend", "foo"], "--backend 'foo': must be one of auto, tensorrt"),
        (["--device", "gpu"], "--device 'gpu': must be cpu, cuda or cuda:N"),
        (["--device", "auto"], "--device 'auto': must be cpu, cuda or cuda:N"),
        (["--precision", "int8"], "--precision 'int8': must be one of fp32, fp16, bf16"),
        (["--resize", "zoom"], "--resize 'zoom': must be one of stretch, pad, crop"),
        (["--test-norm", "batch"], "--test-norm 'batch': must be one of stats, running"),
        (["--codec", "h2"], "--codec 'h2': not a four-character code"),
        (["--batch", "0"], "--batch 0: must be at least"),
        (["--batch", "100000"], "--batch 100000: must be at most 4096"),
        (["--batch", "abc"], "--batch 'abc': must be a whole number."),
        (["-b", "1.5"], "--batch '1.5': must be a whole number."),
        (["--threads", "0"], "--threads 0: must be at least"),
        (["--max-pixels", "0"], "--max-pixels 0: must be at least"),
    ],
    "bench": [
        (["--duration", "nan"], "--duration nan: must be a finite number"),
        (["--duration", "inf"], "--duration inf: must be a finite number"),
        (["--duration", "0"], "--duration 0: must be greater than 0"),
        (["--duration", "abc"], "--duration 'abc': must be a number."),
        (["--warmup", "nan"], "--warmup nan: must be a finite number"),
        (["--warmup", "inf"], "--warmup inf: must be a finite number"),
        (["--warmup", "-1"], "--warmup -1: must be at least 0"),
        (["--min-iters", "-5"], "--min-iters -5: must be at least"),
        (["--e2e-batch", "0"], "--e2e-batch 0: must be at least"),
        (["--max-frames", "0"], "--max-frames 0: must be at least"),
        (["--quiet-wait", "nan"], "--quiet-wait nan: must be a finite number"),
        (["--batch", "0,4"], "--batch 0: must be at least 1"),
        (["--backends", "torch,foo"], "--backends 'foo': must be one of torch, onnxruntime"),
        (["--device", "gpu"], "--device 'gpu': must be auto, cpu, cuda or cuda:N"),
        (["--test-norm", "eval"], "--test-norm 'eval': must be one of stats, running"),
        (["--threads", "0"], "--threads 0: must be at least"),
        (["--seed", "-1"], "--seed -1: must be at least"),
    ],
    "eval": [
        (["--direction", "XtoY"], "--direction 'XtoY': must be one of AtoB, BtoA"),
        (["--device", "gpu"], "--device 'gpu': must be cpu, cuda or cuda:N"),
        (["--split", "../x"], "--split '../x': must be one plain name"),
        (["--split", "a/b"], "--split 'a/b': must be one plain name"),
        (["--limit", "0"], "--limit 0: must be at least"),
        (["--batch", "0"], "--batch 0: must be at least"),
        (["--grid", "0"], "--grid 0: must be at least"),
    ],
    "export": [
        (["--triton-name", "a/b"], "--triton-name 'a/b': must be one plain name"),
        (["--triton-name", ".."], "--triton-name '..': must be one plain name"),
        (["--workspace", "inf"], "--workspace inf: must be a finite number"),
        (["--workspace", "nan"], "--workspace nan: must be a positive number"),
        (["--calib-count", "0"], "--calib-count must be at least 1"),
        (["--calib-count", "10000000"], "--calib-count 10000000: must be at most 100000"),
        (["--io", "fp8"], "--io 'fp8': use fp32 or fp16"),
        (["--test-norm", "x"], "--test-norm 'x': use stats or running"),
    ],
    "train": [
        (["--lr", "nan"], "--lr must be finite, got nan"),
        (["--lambda-l1", "inf"], "--lambda-l1 must be finite, got inf"),
        (["--image-size", "65536"], "--image-size 65536: must be at most 4096"),
        (["--ngf", "0"], "--ngf 0: must be at least"),
        (["--ngf", "wide"], "--ngf 'wide': must be a whole number."),
        (["--seed", "-1"], "--seed -1: must be at least"),
        (["--direction", "XtoY"], "--direction must be AtoB or BtoA"),
        (["--device", "gpu"], "--device must be auto, cpu or cuda"),
        (["--batch-size", "100000"], "--batch-size 100000: must be at most 4096"),
    ],
    "synth": [
        (["--size", "100000"], "--size 100000: must be at most"),
        (["--size", "8"], "--size 8: must be at least"),
        (["--train", "-1"], "--train -1: must be at least"),
        (["--seed", "-1"], "--seed -1: must be at least"),
    ],
    "download": [
        (["--mirror", "notaurl"], "--mirror 'notaurl': must be an http://, https:// or file://"),
        (["--mirror", "http://"], "--mirror 'http://': must be an http://"),
        (["--timeout", "nan"], "--timeout nan: must be a finite number"),
        (["--timeout", "inf"], "--timeout inf: must be a finite number"),
        (["--timeout", "0"], "--timeout 0: must be at least 0.1"),
    ],
}
BASE = {
    "run": RUN,
    "bench": BENCH,
    "eval": EVAL,
    "export": EXPORT,
    "train": TRAIN,
    "synth": SYNTH,
    "download": DOWNLOAD,
}
TABLE = [
    pytest.param(cmd, argv, says, id=f"{cmd}{' '.join(argv)}")
    for cmd, rows in CASES.items()
    for argv, says in rows
]


@pytest.mark.parametrize(("cmd", "argv", "says"), TABLE)
def test_bad_values_are_one_line_exit_64(tmp_path, capsys, cmd, argv, says):
    args = [a.replace("{tmp}", str(tmp_path)) for a in [*BASE[cmd], *argv]]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE, err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert "Traceback" not in err + out
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_dataset_name_is_one_folder_name(tmp_path, capsys):
    code = main(["data", "download", "../../etc", "--to", str(tmp_path / "d"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "NAME '../../etc': must be one plain name" in err, err
    assert not (tmp_path / "d").exists()


def test_toml_with_two_spellings_of_one_option_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("image-size = 32\nimage_size = 64\n")
    code = main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "option 'image-size' is given twice ('image-size' and 'image_size')" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_nan_warmup_does_not_hang(tmp_path):
    """`--warmup nan` used to spin forever (a NaN deadline is never reached)."""
    r = subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "bench", "--checkpoint", str(tmp_path),
         "--warmup", "nan", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 64 and r.stderr.startswith("error: --warmup nan"), r.stderr


@pytest.mark.parametrize(
    ("value", "rules", "says"),
    [
        (float("nan"), {"min": 0}, "must be a finite number"),
        (float("-inf"), {}, "must be a finite number"),
        (0, {"above": 0}, "must be greater than 0"),
        (5, {"max": 4}, "must be at most 4"),
        (-1, {"min": 0}, "must be at least 0"),
        ("x", {"choices": ("a", "b")}, "must be one of a, b"),
        ([1, 0], {"min": 1}, "--flag 0: must be at least 1"),
        ("v", {"check": lambda v: "is wrong"}, "--flag 'v': is wrong"),
    ],
)
def test_the_one_validator(value, rules, says):
    with pytest.raises(UsageError, match=says):
        check_value("--flag", value, **rules)
    check_value("--flag", None, **rules)  # not given: nothing to check


def test_cli_tables_match_the_runtime_lists():
    """The CLI modules keep their choices without importing the heavy modules that own them."""
    from p2p_deploy.bench.candidates import BENCH_BACKENDS
    from p2p_deploy.bench.options import BACKENDS as BENCH_CHOICES
    from p2p_deploy.cli.run import BACKENDS, RESIZE_MODES
    from p2p_deploy.media.resize import RESIZE_MODES as MODES
    from p2p_deploy.runners.factory import BACKENDS as RUNNER_BACKENDS

    assert BACKENDS == RUNNER_BACKENDS and tuple(RESIZE_MODES) == tuple(MODES)
    assert BENCH_CHOICES == BENCH_BACKENDS
