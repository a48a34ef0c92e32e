"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a killed process) never sees a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success rename it onto ``final``.

    ``suffix`` defaults to the final suffix so that writers that pick a format by extension
    (OpenCV, torch.onnx) still work. The file's data is fsynced before the rename, so after a
    power loss ``final`` holds the old or the new content, never an empty file. On error the
    temporary file is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sfx = final.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{sfx}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync_file(tmp_path)  # the caller may have written it through another library
        set_default_mode(tmp_path)
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk (a read-only descriptor is enough on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so probing it later would race with threads.
_UMASK = _read_umask()


def set_default_mode(path: str | os.PathLike[str]) -> None:
    """mkstemp creates 0600 files; give ``path`` the usual permissions (0666 - umask), those a
    plain ``open(path, "w")`` would have given it."""
    os.chmod(path, 0o666 & ~_UMASK)


def write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``final``."""
    with atomic_path(final) as tmp:  # fsyncs the data before the rename
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(final: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``final``."""
    write_bytes(final, text.encode("utf-8"))


def write_json(final: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_text(final, json.dumps(obj, indent=2, sort_keys=False) + "\n")
