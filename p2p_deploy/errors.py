"""User-facing errors: one clear sentence, no traceback.

Every error a user can cause (bad file, bad flag, missing package) is raised as a
:class:`P2PError`; the CLI prints ``error: <message>`` and exits with ``exit_code``.

Exit codes of ``p2p`` (README, ``p2p --help``): 0 done; 1 an error (a file, a model, a
dependency); 2 ``p2p run`` or ``p2p eval`` finished but some inputs failed; 3 training
diverged; 64 a usage error (an unknown flag or an invalid value, sysexits' EX_USAGE); 130
interrupted (Ctrl-C); 143 terminated (SIGTERM, handled as Ctrl-C).
"""

from __future__ import annotations

import re

EXIT_USAGE = 64
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM (kill, docker stop, systemd, Slurm): 128 + 15


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
    """Ctrl-C or SIGTERM: the message says what was kept and how to continue."""

    exit_code = EXIT_INTERRUPTED
    prefix = ""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be: every command unwinds the
    same way (staging removed, the current step saved), and exits 143 instead of 130."""


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


# C0 and C1 control characters and the Unicode line and paragraph separators: what would
# break one message into several lines (or move the cursor) on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``, ...): a file name holding
    a newline must not split one failure line into two."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"
                        if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"), text)


def named(items: list[str], limit: int = 3) -> str:
    """``a, b, c and 2 more``: what a message names, kept to one short line."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
