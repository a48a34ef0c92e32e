"""User-facing errors: one clear sentence, no traceback.

Every error a user can cause (bad file, bad flag, missing package) is raised as a
:class:`P2PError`; the CLI prints ``error: <message>`` and exits with ``exit_code``.

Exit codes of ``p2p`` (README, ``p2p --help``): 0 done; 1 an error (a file, a model, a
dependency); 2 ``p2p run`` finished but some inputs failed; 3 training diverged; 64 a usage
error (an unknown flag or an invalid value, sysexits' EX_USAGE); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_USAGE = 64
EXIT_INTERRUPTED = 130


class P2PError(Exception):
    """An error whose message is a complete sentence meant for the user."""

    exit_code: int = 1
    prefix: str = "error: "

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(P2PError):
    """An invalid option value or combination: the command line must change."""

    exit_code = EXIT_USAGE


class Interrupted(P2PError):
    """Ctrl-C: the message says what was kept and how to continue."""

    exit_code = EXIT_INTERRUPTED
    prefix = ""


class MissingDependency(P2PError):
    """An optional package (tensorrt, pycuda, onnxruntime, ...) is not installed."""


class CheckpointError(P2PError):
    """A checkpoint is missing, truncated, foreign or fits no U-Net."""


class DataError(P2PError):
    """A data folder or image cannot be used."""


class EngineMismatch(P2PError):
    """An exported model does not fit this machine or this software."""


def first_line(exc: BaseException, limit: int = 200, sentence: bool = False) -> str:
    """The first line of ``exc``'s message (with ``sentence``, its first sentence only), at most
    ``limit`` characters, without a final full stop; the class name when the text is empty.

    Library errors go on for paragraphs (torch: "... This is an internal miniz error. If you
    are seeing this error, ..."); a one-line user message needs only what went wrong. Callers
    put it in parentheses before their own full stop.
    """
    text = (str(exc).strip().splitlines() or [""])[0].strip() or type(exc).__name__
    if sentence:
        text = text.partition(". ")[0]
    text = text.rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."
