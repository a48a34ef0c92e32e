"""The ``p2p`` command. Importing this module must stay cheap: no torch, no onnx.

Each command lives in its own module (``cli/train.py``, ...) that registers itself on the app and
imports the heavy machinery lazily inside the command body, so ``p2p --help`` is fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from p2p_deploy import __version__

app = typer.Typer(
    name="p2p",
    help="pix2pix from training to fast inference: train, data, export, run, eval, bench, doctor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )


for _name in COMMAND_MODULES:
    importlib.import_module(f"p2p_deploy.cli.{_name}").register(app)


INTERRUPTED = "interrupted: finished files are kept; run the same command again to resume."


def _from_ctrl_c(exc: BaseException) -> bool:
    """True when ``exc`` was raised while handling a KeyboardInterrupt: typer turns Ctrl-C
    (and the SIGTERM that `p2p run` maps onto it) into a silent ``Exit(130)``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns user errors into one line and an exit code."""
    from p2p_deploy.errors import P2PError

    try:
        # standalone mode: click prints usage errors itself and exits through SystemExit.
        app(args=argv, prog_name="p2p")
    except P2PError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        return 130
    except SystemExit as exc:
        if _from_ctrl_c(exc):
            typer.echo(INTERRUPTED, err=True)
            return 130
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        typer.echo(str(exc.code), err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
