"""The ``p2p`` command. Importing this module must stay cheap: no torch, no onnx.

Each command lives in its own module (``cli/train.py``, ...) that registers itself on the app and
imports the heavy machinery lazily inside the command body, so ``p2p --help`` is fast.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

import typer

from p2p_deploy import __version__
from p2p_deploy.cli.usage import PlainGroup

# Kept in step with p2p_deploy.errors and the README's "Exit codes".
EXIT_CODES = (
    "Exit codes: 0 done; 1 error (a file, a model, a missing package); 2 `p2p run` or `p2p "
    "eval` finished but some inputs failed (listed in OUT/failures.json or eval.json); 3 "
    "training diverged; 64 usage error "
    "(unknown flag, invalid value, an output that cannot or may not be written); 130 "
    "interrupted (Ctrl-C); 143 terminated (SIGTERM, handled as Ctrl-C)."
)

app = typer.Typer(
    name="p2p",
    help="pix2pix from training to fast inference: train, synth, export, run, eval, bench, "
    "doctor, data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog=EXIT_CODES,
    cls=PlainGroup,
)

# Order is the order shown in --help.
COMMAND_MODULES = ("train", "synth", "data", "export", "run", "eval", "bench", "doctor")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"p2p-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """pix2pix from training to fast production inference."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


class OneLineFormatter(logging.Formatter):
    """Log lines with control characters escaped: a file name holding a newline stays on the
    line that names it (see :func:`p2p_deploy.errors.one_line`)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        from p2p_deploy.errors import one_line

        return one_line(super().formatMessage(record))


for _name in COMMAND_MODULES:
    importlib.import_module(f"p2p_deploy.cli.{_name}").register(app)


# Commands that start over when run again: "resume" would promise what they do not do.
STARTS_OVER = ("export", "eval", "bench", "doctor")


def _command_name(argv: list[str] | None) -> str | None:
    """The subcommand in ``argv`` (default: the process's arguments): its first word that is
    not an option of the root command (``-v``)."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def _interrupt_line(prefix: str, command: str | None) -> str:
    """What an interrupt of ``command`` left and how to go on, after ``prefix``."""
    if command in STARTS_OVER:
        return (
            f"{prefix}: finished files are kept; p2p {command} does not resume, run the same "
            "command again to start over."
        )
    return f"{prefix}: finished files are kept; run the same command again to resume."


# Set by a SIGTERM: typer turns any KeyboardInterrupt inside a command into Exit(130), so the
# exit code (143) is decided from this flag afterwards.
_TERM_RECEIVED = threading.Event()


def _raise_terminated(signum: int, frame: object) -> None:  # noqa: ARG001 - signal API
    from p2p_deploy.errors import Terminated

    _TERM_RECEIVED.set()
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``docker stop``, systemd, Slurm) raises :class:`Terminated`, a
    KeyboardInterrupt, wherever Ctrl-C would: every command unwinds as on Ctrl-C (staging and
    temporary files removed, training saves its step) instead of dying on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _TERM_RECEIVED.clear()  # this command's SIGTERM, not an earlier one's (tests call main)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(exc: BaseException, command: str | None = None) -> int:
    """Say what an interrupt of ``command`` left and return its exit code (130 Ctrl-C, 143
    SIGTERM)."""
    from p2p_deploy.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, Terminated):
        cause = cause.__cause__ or cause.__context__
    if cause is not None or _TERM_RECEIVED.is_set():
        typer.echo(_interrupt_line("terminated (SIGTERM)", command), err=True)
        return EXIT_TERMINATED
    typer.echo(_interrupt_line("interrupted", command), err=True)
    return EXIT_INTERRUPTED


def _click_class(name: str) -> type[Exception]:
    """click's exception class ``name``, whether typer vendors click (0.2x) or uses it."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


# typer parses numbers through pydantic, whose errors read "Input should be a valid integer,
# unable to parse string as an integer" ("Input" reads like the INPUT argument): said instead
# in the style of options.check_value, naming the flag and the value.
_PARSE_ERRORS = {"int_parsing": "must be a whole number", "float_parsing": "must be a number"}


def _parse_error(exc: Exception) -> str | None:
    """``--batch 'abc': must be a whole number.`` for a number typer could not parse, else
    None (the parser's own message is used)."""
    errors = getattr(exc.__cause__, "errors", None)
    param = getattr(exc, "param", None)
    if not callable(errors) or param is None:
        return None
    try:
        first = errors()[0]
    except Exception:  # noqa: BLE001 - any other cause: keep the parser's message
        return None
    why = _PARSE_ERRORS.get(first.get("type")) if isinstance(first, dict) else None
    if why is None:
        return None
    opts = getattr(param, "opts", None) or []
    flag = max(opts, key=len) if opts else str(param.name or "").upper()
    return f"{flag} {first.get('input')!r}: {why}."


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns user errors into one line and an exit code.

    Every invalid value, whether the argument parser or a command finds it, is one
    ``error: ...`` line with exit code 64 (see EXIT_CODES); click's usage box is not used.
    """
    from p2p_deploy.errors import EXIT_INTERRUPTED, EXIT_USAGE, P2PError, one_line

    usage_error, click_error = _click_class("UsageError"), _click_class("ClickException")
    command = typer.main.get_command(app)
    from p2p_deploy.media.native import guarded_python_stderr

    try:
        # Not standalone: click raises its usage errors here instead of printing a box.
        with guarded_python_stderr(), sigterm_as_interrupt():  # native lines: media/native.py
            code = command.main(args=argv, prog_name="p2p", standalone_mode=False)
    except P2PError as exc:
        typer.echo(f"{exc.prefix}{one_line(str(exc))}", err=True)
        return exc.exit_code
    except usage_error as exc:
        ctx = exc.ctx
        if type(exc).__name__ == "NoArgsIsHelpError":  # `p2p export` alone: its help
            typer.echo(ctx.get_help())
            return 0
        parsed = _parse_error(exc)
        if parsed is not None:
            typer.echo(f"error: {parsed}", err=True)
            return EXIT_USAGE
        where = f"p2p {ctx.info_name}: " if ctx is not None and ctx.parent is not None else ""
        message = one_line(exc.format_message().rstrip("."))
        typer.echo(f"error: {where}{message} (see --help).", err=True)
        return EXIT_USAGE
    except click_error as exc:
        typer.echo(f"error: {one_line(exc.format_message())}", err=True)
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort) as exc:
        return _interrupted(exc, _command_name(argv))
    if code == EXIT_INTERRUPTED:  # typer turns a Ctrl-C inside a command into Exit(130)
        return _interrupted(KeyboardInterrupt(), _command_name(argv))
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
