"""Nothing a user or an archive names leaves its folder: the one path-containment check.

Every path built from outside input (an archive member, ``--triton-name``, ``--split``, a
dataset name, an input file's name mirrored into an output folder) is joined to its folder
with :func:`contained` before anything is read or written there: it must be relative, hold no
``..`` and no NUL, and resolve (following the links that already exist on the way) to a path
inside the folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from p2p_deploy.errors import P2PError, UsageError

_DRIVE = re.compile(r"^[A-Za-z]:")


def as_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, itself when it is one (``Path(a_path)`` parses it again: ~2.5 us,
    paid several times per image on ``p2p run``'s path)."""
    return path if isinstance(path, Path) else Path(path)


class Resolver:
    """``Path.resolve`` for many files of a few folders: each folder is resolved once (a
    ``lstat`` per component of its path), each file then costs one ``lstat`` (is it a link?).
    Planning a run over a folder of 2,000 images checks every input and output this way
    (``Path.resolve`` per file walks the whole path again: ~40 us a file here)."""

    def __init__(self) -> None:
        self._folders: dict[Path, Path] = {}

    def __call__(self, path: str | os.PathLike[str]) -> Path:
        """``Path(path).resolve()``: absolute, links followed, ``..`` resolved."""
        path = as_path(path)
        if path.name in ("", ".", ".."):
            return path.resolve()
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        target = folder / path.name
        # os.path.islink, not Path.is_symlink: that raises on Python 3.10/3.11 where the name
        # cannot be looked at (a folder without x permission), and resolve() takes it as is.
        return target.resolve() if os.path.islink(target) else target


def escape_reason(
    root: str | os.PathLike[str],
    relative: str | os.PathLike[str],
    resolve: Resolver | None = None,
) -> str | None:
    """Why ``root / relative`` would not stay inside ``root``, or None when it does.
    ``resolve``: a :class:`Resolver` shared by the checks of many files (else each check
    resolves its whole path)."""
    text = os.fspath(relative)
    if not text or text in (".", "./"):
        return "an empty name"
    if "\x00" in text:
        return "a NUL character in the name"
    if text.startswith(("/", "\\")) or os.path.isabs(text) or _DRIVE.match(text):
        return "an absolute path"
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        return "'..' in the path"
    resolve = resolve or Resolver()
    base = resolve(root)
    target = resolve(base / text)
    if target != base and not target.is_relative_to(base):
        return f"it leads outside the folder (to {target})"
    return None


def contained(
    root: str | os.PathLike[str],
    relative: str | os.PathLike[str],
    what: str,
    error: type[P2PError] = UsageError,
) -> Path:
    """``root / relative`` once checked to stay inside ``root`` (see the module docstring).

    ``what`` names the source in the message (``--triton-name``, ``archive member``).

    Raises:
        ``error`` (UsageError by default): naming ``what``, the name and why it escapes.
    """
    why = escape_reason(root, relative)
    if why is not None:
        raise error(f"{what} {os.fspath(relative)!r}: must stay inside {root} ({why}).")
    return Path(root) / relative
