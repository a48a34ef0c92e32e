"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a killed process) never sees a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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


class StagedFiles:
    """Stage-then-promote for files that belong together (a model and its sidecar).

    The files are written into a hidden temporary folder inside ``folder`` (same file system,
    so the moves are atomic renames) and moved under their final names with :meth:`promote`
    only once complete, in the order given; leaving the ``with`` block removes whatever was
    not promoted. A failed write therefore never leaves a file that looks finished::

        with StagedFiles(out_dir, prefix=".p2p-export-") as stage:
            write(stage.path / "model.onnx")
            stage.promote(stage.path / "model.onnx.json", stage.path / "model.onnx")
    """

    def __init__(self, folder: str | os.PathLike[str], prefix: str = ".p2p-stage-") -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.path = Path()  # the staging folder, created on entering the block

    def __enter__(self) -> StagedFiles:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.folder))
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def promote(self, *staged: Path) -> list[Path]:
        """Move each staged file to ``folder`` under its own name, in order; their final paths."""
        finals = []
        for src in staged:
            final = self.folder / Path(src).name
            set_default_mode(src)
            os.replace(src, final)
            finals.append(final)
        return finals


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _try_write(path: Path, folder: Path, flag: str, what: str) -> None:
    """Create and remove a temporary file in ``folder``: the one test root cannot bypass
    (a read-only file system), and it names the OS's reason."""
    from p2p_deploy.errors import UsageError

    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".p2p-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"{flag} {path}: {what} ({reason}: {folder}).") from None


def check_writable_dir(path: str | os.PathLike[str], flag: str) -> None:
    """Before any work: ``path`` is, or can become, a folder this process can write into.

    Creates nothing (a refused command leaves no empty folder behind).

    Raises:
        UsageError: naming ``flag``: it is a file, lies under a file, or cannot be written.
    """
    from p2p_deploy.errors import UsageError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: output path exists and is not a folder.")
    _try_write(path, _nearest_existing(path), flag, "output folder cannot be written")


def check_writable_file(path: str | os.PathLike[str], flag: str) -> None:
    """Before any work: a file can be written at ``path`` (replacing a file, never a folder).

    Raises:
        UsageError: naming ``flag``: it is a folder, lies under a file, or cannot be written.
    """
    from p2p_deploy.errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name.")
    _try_write(path, _nearest_existing(path.parent), flag, "file cannot be written")
