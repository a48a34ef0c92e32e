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
serialised by a lock and last as long as one decode (about a millisecond).
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

log = logging.getLogger(__name__)

_LOCK = threading.RLock()
# Lines that come from libpng, libjpeg, libtiff, OpenCV's logger and FFmpeg's logger.
NATIVE_LINE = re.compile(
    rb"^(libpng (error|warning)|\[ ?(WARN|ERROR|INFO|DEBUG|FATAL)[:\]]"
    rb"|\[[^\]\n]* @ (0x)?[0-9a-fA-F]+\]|OpenCV: |OpenCV\(|Corrupt JPEG data|"
    rb"Premature end of JPEG|Invalid SOS parameters|TIFFReadDirectory|TIFFFetch)"
)


def _sink() -> int:
    """A descriptor for the capture: a memfd (no disk: works on a full one), else a temp file."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return os.memfd_create("p2p-native-stderr")
    return os.dup(tempfile.TemporaryFile().fileno())  # pragma: no cover - non-Linux


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[None]:
    """Run the body with fd 2 captured; replay what is not a native library's line.

    Dropped lines are logged at debug level (``p2p -v`` shows them)."""
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
        if NATIVE_LINE.match(line):
            log.debug("native: %s", line.decode("utf-8", "replace").rstrip())
        else:
            keep.append(line)
    if keep:
        with contextlib.suppress(OSError):
            os.write(2, b"".join(keep))
