"""What an input path really is, before anything reads it: the one input-kind check.

A path named like ``x.png`` may be a FIFO (opening it for reading blocks until a writer
appears: a hang), a socket, a device file, a dangling link, a file this process may not read,
or a folder that cannot be listed or entered. Every reader in the project (``p2p run``, ``p2p
eval``, training data, INT8 calibration, bench) goes through :func:`read_input_bytes` or
:func:`check_input_file` and every folder walk through :func:`walk_inputs` / :func:`list_folder`,
so each of these is one :class:`~p2p_deploy.errors.DataError` line naming the path (escaped:
one failure is one line, see :func:`p2p_deploy.errors.one_line`), never a hang, a traceback or
a silent skip.

A special file is never ``open()``-ed: its kind comes from ``stat``; a regular file is opened
with ``O_NONBLOCK`` and checked again with ``fstat`` on the open descriptor, so a file swapped
for a FIFO in between is refused too.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from p2p_deploy.errors import DataError
from p2p_deploy.paths import as_path

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def special_kind(mode: int) -> str | None:
    """``a FIFO (named pipe)``, ``a socket``, ... for a ``st_mode`` that is not a regular file;
    None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _reason(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or errno.EIO) or str(exc)


def check_input_file(path: str | os.PathLike[str]) -> None:
    """``path`` is a regular file (or a link to one): nothing else is ever opened.

    Raises:
        DataError: missing, a dangling link, a FIFO, socket, device or folder, or ``stat``
            itself fails (a folder on the way that cannot be entered).
    """
    path = as_path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise DataError(f"{path}: a link to a missing file ({os.readlink(path)}).") from None
        raise DataError(f"{path}: no such file.") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({_reason(exc)}).") from None
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise DataError(f"{path}: not a regular file ({kind}); not read.")


def _open_regular(path: Path) -> int:
    """A read-only descriptor of the regular file ``path`` (see the module docstring)."""
    check_input_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({_reason(exc)}).") from None
    try:
        kind = special_kind(os.fstat(fd).st_mode)
    except OSError as exc:
        os.close(fd)
        raise DataError(f"{path}: cannot read file ({_reason(exc)}).") from None
    if kind is not None:  # swapped for something else since the stat
        os.close(fd)
        raise DataError(f"{path}: not a regular file ({kind}); not read.")
    return fd


def check_readable(path: str | os.PathLike[str]) -> None:
    """``path`` is a regular file this process may read (for readers that open the file
    themselves, e.g. FFmpeg for videos).

    Raises:
        DataError: as :func:`read_input_bytes`.
    """
    os.close(_open_regular(Path(path)))


def read_input_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file ``path`` (see the module docstring).

    Raises:
        DataError: not a regular file, or it cannot be opened or read (the OS's reason:
            ``Permission denied``, ...).
    """
    path = as_path(path)
    fd = _open_regular(path)
    try:
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({_reason(exc)}).") from None
    finally:
        os.close(fd)


@dataclass
class Listing:
    """One folder of a walk.

    Attributes:
        folder: the folder.
        dirs: its sub-folders (links to folders included), sorted by name; a caller of
            :func:`walk_inputs` removes names from it to skip them.
        files: its regular files (and links to them), sorted by name.
        problems: entries that cannot be read as a file or a folder, with the reason (a FIFO,
            a socket, a device file, a dangling link, a folder met twice through links), or the
            folder itself when it cannot be listed or entered.
    """

    folder: Path
    dirs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def list_folder(folder: str | os.PathLike[str]) -> Listing:
    """Classify the entries of ``folder`` without opening any of them (see :class:`Listing`).

    A folder that cannot be listed (no read permission) or entered (no search permission) is
    one problem naming the folder, and nothing else of it is listed.
    """
    folder = Path(folder)
    out = Listing(folder)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        out.problems.append((folder, f"cannot list the folder ({_reason(exc)})"))
        return out
    for entry in entries:
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            target = os.readlink(path) if entry.is_symlink() else "?"
            out.problems.append((path, f"a link to a missing file ({target})"))
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM) and not entry.is_symlink():
                # Names listed but nothing inside can be reached: the folder cannot be entered.
                out.dirs, out.files = [], []
                out.problems = [(folder, f"cannot enter the folder ({_reason(exc)})")]
                return out
            out.problems.append((path, f"cannot read ({_reason(exc)})"))
            continue
        if stat.S_ISDIR(st.st_mode):
            out.dirs.append(entry.name)
        elif stat.S_ISREG(st.st_mode):
            out.files.append(entry.name)
        else:
            kind = special_kind(st.st_mode)
            out.problems.append((path, f"not a regular file ({kind}); not read"))
    return out


def walk_inputs(root: str | os.PathLike[str]) -> Iterator[Listing]:
    """Top-down walk of ``root`` (like ``os.walk``) that follows links to folders, reads each
    folder once (a link loop is a problem, not a hang) and reports what it cannot read in
    each :class:`Listing`'s ``problems`` instead of skipping it. Remove names from a yielded
    ``dirs`` to skip those folders."""
    root = Path(root)
    seen: dict[tuple[int, int], Path] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            yield Listing(folder, problems=[(folder, f"cannot read ({_reason(exc)})")])
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            yield Listing(
                folder, problems=[(folder, f"a link to a folder read already ({seen[key]})")]
            )
            continue
        seen[key] = folder
        listing = list_folder(folder)
        yield listing
        stack.extend(folder / d for d in reversed(listing.dirs))
