"""Video files through OpenCV: a reader that yields BGR frames, an atomic writer, codec probing.

opencv-python wheels ship FFmpeg without an H.264 encoder: ``mp4v`` opens, ``avc1``/``H264`` do
not. The writer checks ``VideoWriter.isOpened()`` and names the codecs that work here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from p2p_deploy.atomic import set_default_mode, temp_prefix, write_problem
from p2p_deploy.errors import DataError
from p2p_deploy.imaging import to_bgr8
from p2p_deploy.media.native import captured_native_stderr

log = logging.getLogger(__name__)

PROBE_CODECS: tuple[str, ...] = ("mp4v", "avc1", "XVID", "MJPG", "H264")
DEFAULT_FPS = 25.0


def quiet_native_logs() -> None:
    """Keep OpenCV's and FFmpeg's own log lines (``moov atom not found``, ``[ WARN:0@0.1]
    ...``, ``Could not open codec``) off the terminal: every problem they describe is already
    reported as one sentence naming the file. Call before the first video is opened (FFmpeg's
    level is read once, then); a level set in the environment by the user wins."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class VideoSource:
    """A video opened for reading with FFmpeg.

    Attributes: ``fps`` (DEFAULT_FPS when the file does not say), ``frame_count`` (the
    container's claim, may be 0 or approximate), ``width``, ``height``.
    Raises DataError on open when the file is not a readable video.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        from p2p_deploy.media.inputs import check_readable

        check_readable(self.path)  # a FIFO or an unreadable file: one line, never opened
        if self.path.stat().st_size == 0:
            raise DataError(f"{self.path}: empty video file.")
        # CAP_FFMPEG only: the default backend list would open a junk file as an image sequence.
        with captured_native_stderr():  # "moov atom not found" and the like
            self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            raise DataError(f"{self.path}: unreadable video (FFmpeg cannot open it).")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning(
                "%s: no usable frame rate in the file; writing %.0f fps", self.path, DEFAULT_FPS
            )
            fps = DEFAULT_FPS
        self.fps = fps
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)

    def frames(self) -> Iterator[np.ndarray]:
        """Yield (H, W, 3) uint8 BGR frames until the stream ends (or stops decoding)."""
        while True:
            with captured_native_stderr():  # a damaged frame: FFmpeg's decoder complains
                ok, frame = self._cap.read()
            if not ok or frame is None:
                return
            yield to_bgr8(frame)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fourcc(codec: str) -> int:
    if len(codec) != 4:
        raise DataError(f"codec {codec!r} is not a four-character code (e.g. mp4v, MJPG).")
    return cv2.VideoWriter_fourcc(*codec)


def keeps_odd_sizes(codec: str, suffix: str) -> bool:
    """True when ``codec`` into a ``suffix`` file stores odd frame sizes exactly.

    OpenCV's FFmpeg writer truncates every frame to even width and height, whatever the codec
    (``width &= -2`` in cap_ffmpeg_impl.hpp: a 333x251 video comes out 332x250). OpenCV's own
    Motion-JPEG writer (``CAP_OPENCV_MJPEG``, MJPG in .avi) has no such limit, and
    :class:`VideoSink` uses it for odd sizes.
    """
    return codec.upper() == "MJPG" and suffix.lower() == ".avi"


def odd_size_output(dst: Path) -> Path:
    """Where a video whose size ``dst``'s codec cannot store goes instead: MJPG in ``.avi``
    (see :func:`keeps_odd_sizes`)."""
    return dst.with_suffix(".avi")


class VideoSink:
    """Writes a video under a temporary name and renames it onto ``path`` in :meth:`finish`.

    An interrupted or failed write never leaves a file under the final name: :meth:`abort`
    removes the temporary file (a hard kill leaves it under its hidden temporary name, which a
    later run removes: :func:`p2p_deploy.atomic.clean_stale_temps`), and :meth:`finish` reads
    the file back before renaming it (OpenCV's writer reports no write error: a full disk
    leaves a file without its index). Frames: (height, width, 3) uint8 BGR, every frame the
    same size. Odd sizes are kept with MJPG/.avi (:func:`keeps_odd_sizes`); any other codec
    stores them padded by one repeated edge column/row (a warning says so).
    """

    def __init__(self, path: str | Path, codec: str, fps: float, width: int, height: int) -> None:
        self.path = Path(path)
        self.size = (width, height)
        code = fourcc(codec)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=temp_prefix(self.path.stem),
                suffix=f".tmp{self.path.suffix}",
                dir=self.path.parent,
            )
        except OSError as exc:
            raise DataError(f"{self.path}: cannot write ({exc.strerror or exc}).") from None
        os.close(fd)
        self.tmp = Path(tmp)
        self.frames_written = 0
        odd = width % 2 or height % 2
        own_mjpeg = odd and keeps_odd_sizes(codec, self.path.suffix)
        # Padding for encoders that need even sizes: right column / bottom row.
        self._pad = (0, 0) if own_mjpeg or not odd else (width % 2, height % 2)
        if any(self._pad):
            log.warning(
                "%s: %dx%d has an odd side, which OpenCV's %s writer cannot store; written at "
                "%dx%d (edge repeated). --codec MJPG (.avi) keeps the size.",
                self.path, width, height, codec, width + self._pad[0], height + self._pad[1],
            )  # fmt: skip
        size = (width + self._pad[0], height + self._pad[1])
        # An unknown FourCC makes OpenCV print "tag ... is not found" straight to fd 2 (no log
        # level covers it); the DataError below says it in one line instead.
        with captured_native_stderr():
            if own_mjpeg:
                self._writer = cv2.VideoWriter(str(self.tmp), cv2.CAP_OPENCV_MJPEG, code, fps, size)
            else:
                self._writer = cv2.VideoWriter(str(self.tmp), code, fps, size)
        if not self._writer.isOpened():
            self._writer.release()
            full = write_problem(self.tmp)  # no header written: a full disk, not the codec
            self.tmp.unlink(missing_ok=True)
            if full is not None:
                raise DataError(f"{self.path}: cannot write ({full}).")
            if codec_works(codec, self.path.suffix):  # it writes small frames: the size is it
                raise DataError(
                    f"{self.path}: codec {codec!r} cannot write {size[0]}x{size[1]} frames (it "
                    f"writes smaller ones here: the frame size is above what its encoder takes, "
                    f"e.g. under 8192 pixels a side for mp4v); use --model-size, or --codec MJPG."
                )
            works = [c for c in PROBE_CODECS if codec_works(c, self.path.suffix)]
            raise DataError(
                f"{self.path}: codec {codec!r} cannot open for writing {self.path.suffix} here; "
                f"codecs that work: {', '.join(works) or 'none'} (see `p2p doctor`)."
            )

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame {frame.shape[1]}x{frame.shape[0]} != video {self.size}")
        if any(self._pad):
            frame = cv2.copyMakeBorder(
                frame, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_REPLICATE
            )
        self._writer.write(frame)
        self.frames_written += 1

    def finish(self) -> None:
        """Close the file, check that it holds every frame, and move it to its final name.

        Raises:
            DataError: the file is incomplete (a full disk: the OS's reason is named) or cannot
                be renamed onto ``path``; the temporary file is removed either way.
        """
        self._writer.release()
        try:
            problem = self._check_written()
            if problem is not None:
                raise DataError(f"{self.path}: cannot write ({problem}).")
            with open(self.tmp, "rb") as f:  # the data is on disk before the name is
                os.fsync(f.fileno())
            set_default_mode(self.tmp)  # like the images: not the 0600 of its temporary name
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise DataError(f"{self.path}: cannot write ({exc.strerror or exc}).") from None
        except DataError:
            self.abort()
            raise

    def _check_written(self) -> str | None:
        """None when the temporary file opens as a video of ``frames_written`` frames at the
        planned size; else why not (the OS's reason when the disk is full)."""
        with captured_native_stderr():  # an unfinished file: "moov atom not found"
            cap = cv2.VideoCapture(str(self.tmp), cv2.CAP_FFMPEG)
        try:
            got = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else -1
        finally:
            cap.release()
        n = self.frames_written
        # mp4 and avi carry an exact count; others (mkv, mov) may estimate it from duration.
        exact = self.path.suffix.lower() in (".mp4", ".avi")
        if got == n or (not exact and got > 0 and abs(got - n) <= max(1, n // 100)):
            return None
        reason = write_problem(self.tmp)
        if reason is not None:
            return reason
        if got < 0:
            return "the written file does not open as a video"
        return f"the encoder stored {got} of {n} frames"

    def abort(self) -> None:
        """Close and delete the temporary file; the final name is never touched."""
        self._writer.release()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


@cache
def codec_works(codec: str, suffix: str = "") -> bool:
    """True when OpenCV can really write a few frames with ``codec`` into a ``suffix`` file
    and read them back (a tiny write into a temporary folder)."""
    with captured_native_stderr():
        return _probe(codec, suffix)


def _probe(codec: str, suffix: str) -> bool:
    from p2p_deploy.media.files import CODEC_CONTAINER

    suffix = suffix or CODEC_CONTAINER.get(codec.lower(), ".avi")
    with tempfile.TemporaryDirectory(prefix="p2p-codec-") as d:
        path = os.path.join(d, "probe" + suffix)
        try:
            w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), 10.0, (64, 64))
        except cv2.error:
            return False
        if not w.isOpened():
            w.release()
            return False
        for i in range(3):
            w.write(np.full((64, 64, 3), 40 * i, np.uint8))
        w.release()
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        return bool(ok)


def working_codecs() -> dict[str, bool]:
    """Every codec of :data:`PROBE_CODECS` -> whether it really writes here."""
    return {c: codec_works(c) for c in PROBE_CODECS}
