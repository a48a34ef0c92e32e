"""Native libraries' own stderr lines kept off the terminal, without losing ours.

libpng prints ``libpng error: IDAT: CRC error`` with ``fprintf(stderr)`` whatever OpenCV's log
level, OpenCV prints ``[ WARN:0@0.1] ... PNG input buffer is incomplete`` and ``OpenCV:
FFMPEG: tag ... is not found``, FFmpeg ``[mov,mp4 @ 0x...] moov atom not found``. Every problem
they describe is reported by this project as one sentence naming the file, so their lines are
noise, and unnamed noise at that.

Log levels cover only part of it (OpenCV's ``setLogLevel``, FFmpeg's
``OPENCV_FFMPEG_LOGLEVEL``: see :func:`p2p_deploy.media.video.quiet_native_logs`), so native
output is filtered at file descriptor 2, two ways:

* a window per call (:func:`captured_native_stderr`): descriptor 2 points at an in-memory file
  for the call, which is replayed afterwards minus the native libraries' lines. Descriptor 2
  is shared by every thread, so windows are serialised by a lock: fine for one call now and
  then, but it serialises every decode of a multithreaded run (measured: 2 threads decoded
  JPEGs *slower* than one);
* for a whole run (:func:`filtered_native_stderr`, what the pipeline uses): descriptor 2 points
  at a pipe for the run, and a thread passes on every line that is not a native library's.
  Windows inside it cost nothing (no lock, no descriptor juggling per call).

Either way Python's own stderr writes never share a native library's line: the CLI routes them
through :class:`GuardedStderr` (:func:`guarded_python_stderr`), which waits out a window, and
during a run-wide filter writes to the real descriptor directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any, TextIO

log = logging.getLogger(__name__)

_LOCK = threading.RLock()
# While a run-wide filter is on: Python's own stderr, on (a copy of) the real descriptor 2.
_REAL: TextIO | None = None
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
            return self._target().write(text)

    def flush(self) -> None:
        with _LOCK:
            self._target().flush()

    def isatty(self) -> bool:
        """Whether the terminal is what Python's output reaches: during a run-wide filter,
        descriptor 2 is the filter's pipe, but Python's lines go to the real descriptor, and
        rich decides by this whether to draw its progress bar at all."""
        with _LOCK:  # not the real stream as it is being closed
            return self._target().isatty()

    def _target(self) -> TextIO:
        """During a run-wide filter, the real descriptor instead of descriptor 2 (which is the
        filter's pipe then); a wrapped stream that is not descriptor 2 (a file, a test's
        capture) is written as it is."""
        if _REAL is not None:
            try:
                on_fd2 = self.wrapped.fileno() == 2
            except (AttributeError, OSError, ValueError):
                on_fd2 = False
            if on_fd2:
                return _REAL
        return self.wrapped

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...
        return getattr(self.wrapped, name)


@contextlib.contextmanager
def guarded_python_stderr() -> Iterator[None]:
    """Route ``sys.stderr`` through :class:`GuardedStderr` for the body (the CLI's whole run);
    the previous ``sys.stderr`` is restored afterwards."""
    previous = sys.stderr
    # rich's live display (a progress bar) replaces sys.stderr with a proxy that prints above
    # the bar, on to the stream it replaced: guarded already, and to be kept in the way.
    proxied = getattr(previous, "rich_proxied_file", None)
    if not isinstance(previous, GuardedStderr) and not isinstance(proxied, GuardedStderr):
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
    debug level (``p2p -v`` shows them). Inside :func:`filtered_native_stderr` a window that
    keeps Python's lines is free: the filter already drops the native ones."""
    if _REAL is not None and not drop_all:
        yield
        return
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


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """For the body (a run whose worker threads decode and encode at once), descriptor 2 points
    at a pipe; a thread passes on to the real descriptor every line that is not a native
    library's (dropped ones are logged at debug level), and Python's own ``sys.stderr`` writes
    go straight to the real descriptor (``sys.stderr`` is a :class:`GuardedStderr` for the
    body), so they never share a line with a native library's partial output. No lock per
    native call: :func:`captured_native_stderr` windows (but ``drop_all`` ones) are free
    inside. A nested use, or one where descriptors cannot be had, runs the body as it is."""
    global _REAL
    if _REAL is not None:
        yield
        return
    # Python's pending output goes out first; outside the lock (a progress bar's proxy takes
    # its own lock to flush, and its refresh thread takes them in the other order).
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with _LOCK:  # no window is open while descriptor 2 changes hands
        saved = -1
        try:
            saved = os.dup(2)
            read_end, write_end = os.pipe()
        except OSError:  # no descriptors left: better noise than a failure
            if saved >= 0:
                os.close(saved)
            saved = -1
        else:
            # The encoding of the stream on descriptor 2 (sys.stderr may be a proxy without one).
            encoding = getattr(sys.__stderr__, "encoding", None) or "utf-8"
            real = open(  # noqa: SIM115 - closed when the body ends
                os.dup(saved), "w", encoding=encoding, errors="backslashreplace", buffering=1
            )
            os.dup2(write_end, 2)
            os.close(write_end)
            _REAL = real
    if saved < 0:
        yield
        return
    ended = threading.Event()
    pump = threading.Thread(
        target=_pump, args=(read_end, saved, ended), name="p2p-native-stderr", daemon=True
    )
    pump.start()
    try:
        with guarded_python_stderr():
            yield
    finally:
        _end_filter(saved, real, pump, ended)


def _end_filter(saved: int, real: TextIO, pump: threading.Thread, ended: threading.Event) -> None:
    """Give descriptor 2 back, stop the pump, close what the filter opened: every step runs
    to its end even when Ctrl-C lands in the middle (a second one, while the first stops the
    run). An interrupted cleanup had left descriptor 2 on the pipe and the pump running, so
    the next run in the same process (a notebook) took the pipe for the real stderr. The
    interrupt is raised once all is back."""
    closed = False

    def restore() -> None:
        global _REAL
        with _LOCK:
            _REAL = None
            with contextlib.suppress(Exception):
                real.flush()
            os.dup2(saved, 2)  # descriptor 2 is the real one again

    def stop_pump() -> None:
        # Not the pipe's end of file: a child process started meanwhile may hold its write
        # end for ever. The pump passes on what is in the pipe and stops; ``saved`` stays
        # open until it has (closing it first could hand its number to another file).
        ended.set()
        pump.join()

    def close() -> None:
        nonlocal closed
        real.close()
        if not closed:  # set first: a second close could hit a number reused meanwhile
            closed = True
            os.close(saved)

    interrupted: BaseException | None = None
    for step in (restore, stop_pump, close):
        while True:
            try:
                step()
                break
            except KeyboardInterrupt as exc:  # each step is safe to run again
                interrupted = exc
    if interrupted is not None:
        raise interrupted


def _pump(read_end: int, out: int, ended: threading.Event) -> None:
    """The filter's thread: lines from ``read_end`` to ``out``, the native libraries' dropped,
    until the pipe is empty once ``ended`` is set (or at its end of file); a last line
    without its newline is judged then."""
    rest = b""
    try:
        while True:
            # Read before looking: everything written before ``ended`` was set is in the pipe
            # by then, so an empty pipe after it means nothing is left.
            stopping = ended.is_set()
            ready, _, _ = select.select([read_end], [], [], 0 if stopping else 0.05)
            if not ready:
                if stopping:
                    break
                continue
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            *lines, rest = (rest + chunk).split(b"\n")
            _pass_on([line + b"\n" for line in lines], out)
        if rest:
            _pass_on([rest], out)
    except OSError:  # pragma: no cover - the real stderr is gone; nothing to tell it
        pass
    finally:
        os.close(read_end)


def _pass_on(lines: list[bytes], out: int) -> None:
    keep = []
    for line in lines:
        if NATIVE_LINE.match(line):
            log.debug("native: %s", line.decode("utf-8", "replace").rstrip())
        else:
            keep.append(line)
    if keep:
        os.write(out, b"".join(keep))
