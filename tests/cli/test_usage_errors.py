"""One style for every invalid value (issue 11, messages): one ``error:`` line and exit code 64,
which no command uses for anything else (`p2p run`'s 2 means "some inputs failed"); plain
argument names in usage lines; the exit codes listed in ``p2p --help``."""

from __future__ import annotations

import pytest

from p2p_deploy.cli import main
from p2p_deploy.errors import EXIT_USAGE


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["train", "--ngf", "x"], "--ngf"),  # the parser: not an integer
        (["train", "--no-such-flag"], "No such option: --no-such-flag"),
        (["train", "--direction", "up", "--out", "{tmp}/r"], "--direction must be AtoB or BtoA"),
        (["run"], "Missing argument 'INPUT'"),
        (["run", "{tmp}", "-e", "{tmp}/m.onnx", "-b", "0"], "--batch 0: must be at least 1"),
        (["run", "{tmp}", "-e", "{tmp}/m.onnx", "--resize", "zoom"], "--resize 'zoom': must be"),
        (["export", "{tmp}/g.safetensors", "--io", "fp8"], "--io 'fp8': use fp32 or fp16"),
        (["bench", "--batch", "1,x", "--out", "{tmp}/r"], "comma-separated int values"),
        (["bench", "--out", "{tmp}/r"], "nothing to benchmark"),
        (["run", "{tmp}", "-e", "{tmp}/m.onnx", "--codec", "h26"], "h26"),
        (["bogus"], "No such command 'bogus'"),
    ],
    ids=[
        "type",
        "flag",
        "train-value",
        "missing",
        "range",
        "run-value",
        "export",
        "list",
        "bench",
        "codec",
        "command",
    ],
)
def test_invalid_values_are_one_line_with_the_usage_code(tmp_path, capsys, argv, says):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE == 64, err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert "╭" not in err + out and "Traceback" not in err  # no usage box, no traceback
    assert not (tmp_path / "r").exists()


def test_root_help_lists_the_exit_codes(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for code in (
        "0 done",
        "1 error",
        "2 `p2p run` or `p2p eval` finished but some inputs failed",
        "3 training diverged",
        "64 usage error",
        "130 interrupted",
    ):
        assert code in text, code


@pytest.mark.parametrize(
    ("cmd", "usage"),
    [
        ("run", "p2p run [OPTIONS] INPUT"),
        ("export", "p2p export [OPTIONS] CHECKPOINT"),
        ("synth", "p2p synth [OPTIONS] OUT"),
        ("train", "p2p train [OPTIONS]"),
    ],
)
def test_usage_lines_name_arguments_plainly(capsys, monkeypatch, cmd, usage):
    """typer wrote ``{INPUT}``, ``{checkpoint}`` and ``{out}``."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main([cmd, "--help"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "Usage:" in ln)
    assert line.split("Usage:", 1)[1].strip() == usage


@pytest.mark.parametrize(
    "cmd",
    [[], ["train"], ["synth"], ["data"], ["data", "list"], ["data", "download"], ["export"],
     ["run"], ["eval"], ["bench"], ["doctor"]],  # fmt: skip
    ids=lambda c: " ".join(c) or "p2p",
)
def test_help_shows_flags_without_a_value_type(capsys, monkeypatch, cmd):
    """typer wrote every flag as ``--overwrite <bool>``, as if it took a value."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main([*cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--help" in out and "<bool>" not in out
    if cmd == ["run"]:
        assert "<int>" in out and "<path>" in out  # options that take a value keep their type
        assert "--no-progress" in out


@pytest.mark.parametrize(
    ("argv", "target", "last"),
    [
        (
            ["export", "{tmp}/g.safetensors", "--out", "{tmp}/x"],
            "p2p_deploy.export.command.run_export",
            "interrupted: finished files are kept; p2p export does not resume, run the same "
            "command again to start over.",
        ),
        (
            ["-v", "run", "{tmp}", "-e", "{tmp}/m.onnx"],
            "p2p_deploy.models.opening.open_model",
            "interrupted: finished files are kept; run the same command again to resume.",
        ),
    ],
    ids=["export", "run"],
)
def test_ctrl_c_says_whether_the_command_resumes(tmp_path, capsys, monkeypatch, argv, target, last):
    """p2p run, train and data download pick up where they stopped; export, eval and bench
    start over: the line after a Ctrl-C says which, instead of promising a resume to all."""

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupt)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 130 and err.splitlines()[-1] == last, err
