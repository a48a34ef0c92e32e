"""User-facing errors: one clear sentence, no traceback.

Every error a user can cause (bad file, bad flag, missing package) is raised as a
:class:`P2PError`; the CLI prints ``error: <message>`` and exits with ``exit_code``.
"""

from __future__ import annotations


class P2PError(Exception):
    """An error whose message is a complete sentence meant for the user."""

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class MissingDependency(P2PError):
    """An optional package (tensorrt, pycuda, onnxruntime, ...) is not installed."""


class CheckpointError(P2PError):
    """A checkpoint is missing, truncated, foreign or fits no U-Net."""


class DataError(P2PError):
    """A data folder or image cannot be used."""


class EngineMismatch(P2PError):
    """An exported model does not fit this machine or this software."""
