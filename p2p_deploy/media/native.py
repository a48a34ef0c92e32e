"""Native libraries' own stderr lines kept off the terminal, without losing ours.

libpng prints ``libpng error: IDAT: CRC error`` with ``fprintf(stderr)`` whatever OpenCV's log
level, OpenCV prints ``[ WARN:0@0.1] ... PNG input buffer is incomplete`` and ``OpenCV:
FFMPEG: tag ... is not found``, FFmpeg ``[mov,mp4 @ 0x...] moov atom not found``. Every problem
they describe is reported by this project as one sentence naming the file, so their lines are
noise, and unnamed noise at that.

Log levels cover only part of it (OpenCV's ``setLogLevel``, FFmpeg's
``OPENCV_FFMPEG_LOGLEVEL``: see :func:`p2p_deploy.media.video.quiet_native_logs`), so the native
call itself runs with file descriptor 2 pointed at an in-memory file
(:func:`captured_native_stderr`). Descriptor 2 is shared by every thread: what another thread
writes meanwhile (a progress bar, a ``failed:`` line) lands in the same capture, so the capture
is replayed afterwards, minus the lines that match the native libraries' patterns. Windows are
serialised by a lock and last as long as one decode (about a millisecond); the CLI routes
Python's own stderr writes through the same lock (:func:`guarded_python_stderr`), so they wait
for a window to close instead of mixing with a native library's partial line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any, TextIO

log = logging.getLogger(__name__)

_LOCK = threading.RLock()
# Lines that come from libpng, libjpeg, libtiff, OpenCV's logger and FFmpeg's logger.
NATIVE_LINE = re.compile(
    rb"^(libpng (error|warning)|\[ ?(WARN|ERROR|INFO|DEBUG|FATAL)[:\]]"
    rb"|\[[^\]\n]* @ (0x)?[0-9a-fA-F]+\]|OpenCV: |OpenCV\(|Corrupt JPEG data|"
    rb"Premature end of JPEG|Invalid SOS parameters|TIFFReadDirectory|TIFFFetch)"
)


class GuardedStderr:
    """``sys.stderr`` whose writes wait while a native call has descriptor 2 captured.

    Without it, a line that another thread writes during a capture window shares the capture
    with libpng's and OpenCV's own output, and a write that lands between two of libpng's
    writes (it prints its message and its newline separately) mixes with a line that is then
    dropped as native. With it, Python's own output (log lines, progress bars, ``failed:``
    lines) never enters a capture: it waits the window out (about a millisecond).
    """

    def __init__(self, wrapped: TextIO) -> None:
        self.wrapped = wrapped

    def write(self, text: str) -> int:
        with _LOCK:
            return self.wrapped.write(text)

    def flush(self) -> None:
        with _LOCK:
            self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...
        return getattr(self.wrapped, name)


@contextlib.contextmanager
def guarded_python_stderr() -> Iterator[None]:
    """Route ``sys.stderr`` through :class:`GuardedStderr` for the body (the CLI's whole run);
    the previous ``sys.stderr`` is restored afterwards."""
    previous = sys.stderr
    if not isinstance(previous, GuardedStderr):
        sys.stderr = GuardedStderr(previous)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stderr = previous


def _sink() -> int:
    """A descriptor for the capture: a memfd (no disk: works on a full one), else a temp file."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return os.memfd_create("p2p-native-stderr")
    return os.dup(tempfile.TemporaryFile().fileno())  # pragma: no cover - non-Linux


@contextlib.contextmanager
def captured_native_stderr(drop_all: bool = False) -> Iterator[None]:
    """Run the body with fd 2 captured; replay what is not a native library's line.

    ``drop_all``: replay nothing (for a call whose failures the caller reports itself and
    whose library prints in its own formats, e.g. OpenVINO loading a model; Python's own
    writes never enter the window, see :class:`GuardedStderr`). Dropped lines are logged at
    debug level (``p2p -v`` shows them)."""
    with _LOCK:
        try:
            saved = os.dup(2)
            sink = _sink()
        except OSError:  # no descriptors left: better noise than a failure
            yield
            return
        with contextlib.suppress(Exception):
            sys.stderr.flush()  # Python's pending output goes out before the window
        os.dup2(sink, 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()  # ... and what was written inside it, into the capture
            os.dup2(saved, 2)
            os.close(saved)
            data = b""
            with contextlib.suppress(OSError):
                os.lseek(sink, 0, os.SEEK_SET)
                chunks = []
                while chunk := os.read(sink, 1 << 16):
                    chunks.append(chunk)
                data = b"".join(chunks)
            os.close(sink)
    if not data:
        return
    keep = []
    for line in data.splitlines(keepends=True):
        if drop_all or NATIVE_LINE.match(line):
            log.debug("native: %s", line.decode("utf-8", "replace").rstrip())
        else:
            keep.append(line)
    if keep:
        with contextlib.suppress(OSError):
            os.write(2, b"".join(keep))
