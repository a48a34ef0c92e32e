"""One process per output folder: the folder lock.

Two ``p2p train --out X`` at once would interleave (one's ``config.json``, the other's
checkpoint, duplicated steps in ``losses.csv``); two ``p2p export --out X`` would both report
success for a folder holding one of them. A command that writes a folder as a whole takes it
with :class:`FolderLock` first: a hidden ``.p2p-lock`` file inside it, locked with ``flock``
and holding the holder's pid, host and command. A second process finds it locked and refuses
in one line naming the holder (:class:`FolderBusy`).

A lock whose process died (SIGKILL, power loss) holds no ``flock`` any more (the kernel drops
it with the process), so the next command reclaims it and says so. On a file system without
``flock`` the recorded pid and host decide, by the rule temporary files are reclaimed on
(:func:`p2p_deploy.atomic.writer_gone`): only a dead process of this host is stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from p2p_deploy.atomic import check_writable_dir, host_tag, writer_gone
from p2p_deploy.errors import P2PError

log = logging.getLogger(__name__)

LOCK_NAME = ".p2p-lock"
LOCK_FORMAT = "p2p-deploy/lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class FolderBusy(P2PError):
    """Another live process holds the folder's lock."""


def _holder_text(holder: dict[str, Any]) -> str:
    pid = holder.get("pid", "?")
    host = holder.get("hostname") or holder.get("host") or "?"
    where = "this host" if holder.get("host") == host_tag() else f"host {host}"
    since = holder.get("started")
    when = f", since {since}" if since else ""
    return f"{holder.get('command') or 'another p2p command'} (pid {pid} on {where}{when})"


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 1 << 16).decode("utf-8") or "{}")
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class FolderLock:
    """Hold ``folder`` for one command while the ``with`` block runs.

    ``folder`` is created when missing (and removed again on release when it is still empty:
    a refused or failed command leaves nothing behind). ``name`` is the lock file's name
    inside ``folder`` (several locks can share a folder, e.g. one per dataset in ``p2p data
    download --to``).

    Raises (on entering):
        UsageError: ``folder`` is a file or cannot be written (:func:`check_writable_dir`).
        FolderBusy: another live process holds it; the message names it.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        command: str,
        flag: str = "--out",
        name: str = LOCK_NAME,
    ) -> None:
        self.folder = Path(folder)
        self.command = command
        self.flag = flag
        self.path = self.folder / name
        self._fd: int | None = None
        self._created: list[Path] = []

    # -- acquiring -----------------------------------------------------------------------

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        check_writable_dir(self.folder, self.flag)
        self._make_folder()
        try:
            for _ in range(10):  # only a lock removed between our open and flock loops
                if self._try_acquire():
                    return
            raise FolderBusy(f"{self.folder}: its lock {self.path.name} keeps changing; try again.")
        except BaseException:
            self._remove_created()
            raise

    def _make_folder(self) -> None:
        missing = []
        p = self.folder.absolute()
        while not p.exists():
            missing.append(p)
            p = p.parent
        self.folder.mkdir(parents=True, exist_ok=True)
        self._created = missing  # deepest first

    def _try_acquire(self) -> bool:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise P2PError(
                f"{self.path}: cannot create the folder lock ({exc.strerror or exc})."
            ) from None
        try:
            holder = _read_holder(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._busy(holder) from None
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise
                # No flock on this file system: the recorded holder decides.
                if holder.get("pid") and not writer_gone(holder.get("host", ""), holder["pid"]):
                    if holder.get("pid") != os.getpid() or holder.get("host") != host_tag():
                        raise self._busy(holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder released (and removed) it between our open and flock
                os.close(fd)
                return False
            holder = _read_holder(fd)  # what a dead holder left, now that we hold it
            if holder.get("pid"):
                log.warning(
                    "%s: reclaimed the lock of %s, which is gone.",
                    self.folder,
                    _holder_text(holder),
                )
            self._write_record(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        self._fd = fd
        return True

    def _busy(self, holder: dict[str, Any]) -> FolderBusy:
        who = _holder_text(holder) if holder else "another process"
        return FolderBusy(
            f"{self.folder}: in use by {who}; wait for it to finish, or choose another {self.flag}."
        )

    def _write_record(self, fd: int) -> None:
        record = {
            "format": LOCK_FORMAT,
            "command": self.command,
            "pid": os.getpid(),
            "host": host_tag(),
            "hostname": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))

    # -- releasing -----------------------------------------------------------------------

    def release(self) -> None:
        """Remove the lock file (still ours: checked by inode) and free the lock; remove the
        folders this lock created when they are still empty. Safe to repeat."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino:
                    os.unlink(self.path)  # before the flock goes: nobody locks a removed file
        finally:
            os.close(fd)
        self._remove_created()

    def _remove_created(self) -> None:
        for p in self._created:  # deepest first; stops at the first one that is not empty
            try:
                p.rmdir()
            except OSError:
                break
        self._created = []
