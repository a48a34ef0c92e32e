"""Never overwrite what this command did not write (issue 20, class 1): one rule,
``p2p_deploy.outputs.check_output_folder`` / ``check_output_file``, for every command that
writes where a user points it: ``p2p train --out``, ``p2p eval --out``, ``p2p bench --out``,
``p2p run --summary-json`` and ``--out --overwrite``, ``p2p synth``, ``p2p export --triton``,
``p2p data download --to``. Real files, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_server import make_archive

from p2p_deploy.cli import main
from p2p_deploy.errors import EXIT_USAGE, UsageError
from p2p_deploy.outputs import (
    OutputSpec,
    check_output_file,
    check_output_folder,
    claim_output_folder,
)

SPEC = OutputSpec(
    command="p2p thing",
    flag="--out",
    what="thing report",
    marker=".p2p-thing",
    names=("report.json", "images"),
    overwrite_flag="--overwrite",
)


def test_the_rule(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert check_output_folder(out, SPEC) == []  # does not exist: may be written
    out.mkdir()
    (out / "notes.md").write_text("mine")
    assert check_output_folder(out, SPEC) == []  # holds none of the names
    (out / "report.json").write_text("the user's")
    with pytest.raises(UsageError, match="holds report.json but no thing report") as info:
        check_output_folder(out, SPEC)
    assert "--overwrite" in str(info.value)
    assert check_output_folder(out, SPEC, overwrite=True) == ["report.json"]  # consent
    claim_output_folder(out, SPEC, {"model": "a"})
    assert check_output_folder(out, SPEC, identity={"model": "a"}) == ["report.json"]  # ours
    with pytest.raises(UsageError, match=r"the thing report of another p2p thing \(model a\)"):
        check_output_folder(out, SPEC, identity={"model": "b"})
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "f", SPEC)
    summary = tmp_path / "summary.json"
    summary.write_text("{}")
    with pytest.raises(UsageError, match="is not a summary this command wrote"):
        check_output_file(summary, "--summary-json", lambda p: False, what="summary")
    check_output_file(summary, "--summary-json", lambda p: True)


def _err(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------ export --triton


def _second_checkpoint(tmp_path: Path) -> Path:
    from helpers import make_tiny_generator, save_checkpoint

    path = tmp_path / "b" / "generator.safetensors"
    path.parent.mkdir()
    return save_checkpoint(make_tiny_generator(seed=7), path, {"direction": "BtoA"})


@pytest.mark.slow
def test_export_triton_of_another_checkpoint_keeps_the_first(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """The issue's example: `p2p export --triton repo` of checkpoint B replaced checkpoint
    A's Triton model, hand-edited config.pbtxt included, without --overwrite."""
    repo = tmp_path / "repo"
    args = ["--skip-parity", "--triton", str(repo), "--batch", "1:2:4"]
    assert main(["export", str(tiny_checkpoint), "--out", str(tmp_path / "a"), *args]) == 0
    config = repo / "p2p_generator" / "config.pbtxt"
    model = repo / "p2p_generator" / "1" / "model.onnx"
    first = model.read_bytes()
    # Re-exporting the same checkpoint replaces its own, unedited model: allowed.
    assert main(["export", str(tiny_checkpoint), "--out", str(tmp_path / "a"), *args]) == 0
    capsys.readouterr()
    b = _second_checkpoint(tmp_path)
    code = main(["export", str(b), "--out", str(tmp_path / "bx"), *args])
    err = _err(capsys)
    assert code == EXIT_USAGE and err.count("\n") == 1, err
    assert "holds the Triton model written by p2p export of another p2p export" in err, err
    assert model.read_bytes() == first and not (tmp_path / "bx").exists()  # before any work
    # A hand edit of A's config is never lost either, even re-exporting A itself.
    config.write_text(config.read_text() + "# tuned by hand\n")
    code = main(["export", str(tiny_checkpoint), "--out", str(tmp_path / "a"), *args])
    err = _err(capsys)
    assert code == EXIT_USAGE and "config.pbtxt: edited since p2p export wrote it" in err, err
    assert config.read_text().endswith("# tuned by hand\n")
    # --overwrite is the user's consent: B replaces A.
    assert main(["export", str(b), "--out", str(tmp_path / "bx"), *args, "--overwrite"]) == 0
    assert model.read_bytes() != first and "tuned by hand" not in config.read_text()


def test_export_triton_into_a_foreign_model_folder_is_refused(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "repo" / "p2p_generator"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text('name: "theirs"\n')
    code = main(["export", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--skip-parity",
                 "--triton", str(tmp_path / "repo"), "--batch", "1:2:4"])  # fmt: skip
    err = _err(capsys)
    assert code == EXIT_USAGE and "holds config.pbtxt, 1 but no Triton model" in err, err
    assert (folder / "config.pbtxt").read_text() == 'name: "theirs"\n'


# ---------------------------------------------------------------------------------------- eval


def _pairs(folder: Path, names: list[str], seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        img = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / name), img)


def test_eval_reports_of_two_datasets_never_mix(
    tiny_onnx_fp32: Path, tmp_path: Path, capsys
) -> None:
    """The issue's example: `p2p eval --save-images` over A/x.png and then B/x.png wrote one
    output over the other. A second evaluation into the same --out is refused; --overwrite
    replaces the whole earlier set."""
    _pairs(tmp_path / "A" / "test", ["x.png"], seed=1)
    _pairs(tmp_path / "B" / "test", ["x.png"], seed=2)
    out = tmp_path / "eval"
    base = [str(tiny_onnx_fp32), "--out", str(out), "--save-images", "--no-progress"]
    assert main(["eval", *base, "--data", str(tmp_path / "A")]) == 0
    first = (out / "outputs" / "x.png").read_bytes()
    assert main(["eval", *base, "--data", str(tmp_path / "A")]) == 0  # the same eval again
    capsys.readouterr()
    code = main(["eval", *base, "--data", str(tmp_path / "B")])
    err = _err(capsys)
    assert code == EXIT_USAGE and "holds the evaluation report of another p2p eval" in err, err
    assert (out / "outputs" / "x.png").read_bytes() == first
    assert json.loads((out / "eval.json").read_text())["data"] == str(tmp_path / "A")
    assert main(["eval", *base, "--data", str(tmp_path / "B"), "--overwrite"]) == 0
    assert json.loads((out / "eval.json").read_text())["data"] == str(tmp_path / "B")


def test_eval_outputs_whose_names_clash_are_all_kept(
    tiny_onnx_fp32: Path, tmp_path: Path
) -> None:
    """x.png and x.jpg of one split used to write one outputs/x.png over the other."""
    _pairs(tmp_path / "d" / "test", ["x.png", "x.jpg", "y.png"])
    out = tmp_path / "eval"
    assert main(["eval", str(tiny_onnx_fp32), "--data", str(tmp_path / "d"), "--out", str(out),
                 "--save-images", "--no-progress"]) == 0  # fmt: skip
    assert sorted(p.name for p in (out / "outputs").iterdir()) == [
        "x.jpg.png", "x.png.png", "y.png"
    ]  # fmt: skip


def test_eval_out_holding_the_users_files_is_refused(
    tiny_onnx_fp32: Path, tmp_path: Path, capsys
) -> None:
    _pairs(tmp_path / "d" / "test", ["x.png"])
    out = tmp_path / "mine"
    out.mkdir()
    (out / "best.png").write_bytes(b"my picture")
    code = main(["eval", str(tiny_onnx_fp32), "--data", str(tmp_path / "d"), "--out", str(out),
                 "--no-progress"])  # fmt: skip
    err = _err(capsys)
    assert code == EXIT_USAGE and "holds best.png but no evaluation report" in err, err
    assert (out / "best.png").read_bytes() == b"my picture"


# --------------------------------------------------------------------------------------- bench


def test_bench_out_holding_the_users_report_is_refused_before_timing(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "report.md").write_text("# my report\n")
    code = main(["bench", "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    err = _err(capsys)
    assert code == EXIT_USAGE and "holds report.md but no benchmark report" in err, err
    assert (out / "report.md").read_text() == "# my report\n"


def test_committed_bench_reports_stay_rewritable() -> None:
    """Report folders written before the marker (bench/reports/*) are recognised as ours."""
    from p2p_deploy.bench.report import BENCH_OUTPUT

    reports = Path(__file__).resolve().parents[2] / "bench" / "reports"
    folder = next(p for p in sorted(reports.iterdir()) if (p / "report.json").is_file())
    assert check_output_folder(folder, BENCH_OUTPUT)  # names taken, and no refusal


# ----------------------------------------------------------------------------------------- run


def test_run_summary_json_never_replaces_a_file_it_did_not_write(
    tiny_onnx_fp32: Path, tmp_path: Path, capsys
) -> None:
    src = tmp_path / "in"
    _pairs(src, ["a.png"])
    mine = tmp_path / "config.json"
    mine.write_text('{"my": "settings"}')
    args = ["run", str(src), "-e", str(tiny_onnx_fp32), "--no-progress", "-o", str(tmp_path / "o")]
    code = main([*args, "--summary-json", str(mine)])
    err = _err(capsys)
    assert code == EXIT_USAGE and "is not a summary this command wrote" in err, err
    assert mine.read_text() == '{"my": "settings"}' and not (tmp_path / "o").exists()
    summary = tmp_path / "summary.json"
    assert main([*args, "--summary-json", str(summary)]) == 0
    assert main([*args, "--summary-json", str(summary), "--overwrite"]) == 0  # ours: replaced
    assert json.loads(summary.read_text())["format"] == "p2p-deploy/run-summary"


def test_run_overwrite_never_replaces_the_users_files(
    tiny_onnx_fp32: Path, tmp_path: Path, capsys
) -> None:
    src = tmp_path / "in"
    _pairs(src, ["a.png"])
    out = tmp_path / "photos"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's photo")
    code = main(["run", str(src), "-e", str(tiny_onnx_fp32), "-o", str(out), "--overwrite",
                 "--no-progress"])  # fmt: skip
    err = _err(capsys)
    assert code == EXIT_USAGE and "--overwrite would replace a.png, which p2p run did not" in err
    assert (out / "a.png").read_bytes() == b"the user's photo"


def test_run_never_counts_the_users_file_as_its_output(
    tiny_onnx_fp32: Path, tmp_path: Path, capsys
) -> None:
    """Without --overwrite a file at an output's name would be skipped as "already there":
    in a folder p2p run did not make it is the user's, so the run is refused instead."""
    src = tmp_path / "in"
    _pairs(src, ["a.png", "b.png"])
    out = tmp_path / "photos"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's photo")
    args = ["run", str(src), "-e", str(tiny_onnx_fp32), "-o", str(out), "--no-progress"]
    code = main(args)
    err = _err(capsys)
    assert code == EXIT_USAGE and err.count("\n") == 1, err
    assert "the run would skip, as if done, a.png, which p2p run did not write" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    assert (out / "a.png").read_bytes() == b"the user's photo"
    (out / "a.png").unlink()
    assert main(args) == 0  # its own folder from now on (marked): a rerun skips its outputs
    assert main(args) == 0 and "nothing to do: all 2 outputs already exist" in _err(capsys)


@pytest.mark.parametrize("bad_inputs", [True, False], ids=["would-write", "would-remove"])
def test_run_never_replaces_or_removes_the_users_failures_json(
    tiny_onnx_fp32: Path, tmp_path: Path, capsys, bad_inputs: bool
) -> None:
    """OUT/failures.json is written when inputs fail and removed when none do: one the user
    put there stops the run before any work, whichever it would have done."""
    src = tmp_path / "in"
    _pairs(src, ["a.png"])
    if bad_inputs:
        (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "failures.json").write_text("my notes")
    code = main(["run", str(src), "-e", str(tiny_onnx_fp32), "-o", str(out), "--no-progress"])
    err = _err(capsys)
    assert code == EXIT_USAGE and "is not a list of failures p2p run wrote" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (out / "failures.json").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["failures.json"]  # nothing written


def test_run_replaces_its_own_failures_json(tiny_onnx_fp32: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    _pairs(src, ["a.png"])
    (src / "broken.png").write_bytes(b"not a png")
    args = ["run", str(src), "-e", str(tiny_onnx_fp32), "-o", str(tmp_path / "o"), "--no-progress"]
    assert main(args) == 2
    (src / "broken.png").unlink()
    assert main(args) == 0  # a rerun that fails nothing removes the stale list it wrote
    assert not (tmp_path / "o" / "failures.json").exists()


# --------------------------------------------------------------------------------------- synth


def test_synth_never_mixes_into_the_users_dataset(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    _pairs(data / "train", ["photo1.jpg"])
    code = main(["synth", str(data), "--train", "2", "--val", "0", "--test", "0", "--size", "32"])
    err = _err(capsys)
    assert code == EXIT_USAGE and "holds train but no synthetic dataset" in err, err
    assert sorted(p.name for p in (data / "train").iterdir()) == ["photo1.jpg"]
    syn = tmp_path / "syn"
    small = ["--train", "2", "--val", "0", "--test", "0", "--size", "32"]
    assert main(["synth", str(syn), *small]) == 0
    assert main(["synth", str(syn), *small, "--train", "3"]) == 0  # same seed and size: extends
    capsys.readouterr()
    code = main(["synth", str(syn), *small, "--seed", "5"])
    err = _err(capsys)
    assert code == EXIT_USAGE and "another p2p synth (seed 0)" in err, err
    assert len(list((syn / "train").iterdir())) == 3


# ------------------------------------------------------------------------------- data download


def test_download_keep_archive_never_replaces_the_users_archive(tmp_path: Path, capsys) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_archive(mirror / "facades.tar.gz")
    to = tmp_path / "datasets"
    to.mkdir()
    (to / "facades.tar.gz").write_bytes(b"my own copy")
    code = main(["data", "download", "facades", "--to", str(to), "--mirror", mirror.as_uri(),
                 "--keep-archive", "--no-progress"])  # fmt: skip
    err = _err(capsys)
    assert code == EXIT_USAGE and "--keep-archive would replace it" in err, err
    assert (to / "facades.tar.gz").read_bytes() == b"my own copy"
    assert sorted(p.name for p in to.iterdir()) == ["facades.tar.gz"]
