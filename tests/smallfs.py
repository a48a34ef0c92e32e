"""Small real file systems for full-disk tests (importable as ``smallfs``: tests/ is on
sys.path): a tmpfs of a given size mounted on a temporary folder, and a way to fill it.

Mounting needs root (CAP_SYS_ADMIN); where it is not permitted the test is skipped with the
reason the kernel gave, never faked with a mock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``256k``, ``8m``) on ``mount_point``; unmount afterwards.

    Skips the calling test when mounting is not permitted here.
    """
    mount_point.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command here: cannot make a small file system")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {r.stderr.strip() or r}"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill ``folder``'s file system with one file until at most ``leave`` bytes are free.

    Returns the filler file (delete it to free the space again)."""
    filler = folder / "filler.bin"
    st = os.statvfs(folder)
    room = st.f_bavail * st.f_frsize - leave
    block = b"\0" * (1 << 16)
    with open(filler, "wb") as f:
        try:
            while room > 0:
                room -= f.write(block[: max(1, min(len(block), room))])
            f.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize
