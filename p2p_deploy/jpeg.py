"""JPEG integrity: OpenCV decodes a cut-off JPEG without complaint, so it is checked here.

Used by training (a truncated file is skipped and named) and by ``p2p run`` (listed as failed).
"""

from __future__ import annotations

from pathlib import Path


def jpeg_is_truncated(path: Path) -> bool:
    """True for a JPEG file whose data stops before its end-of-image marker (see
    :func:`jpeg_data_truncated`); False for other formats and for files that cannot be read
    (the decoder reports those itself)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return jpeg_data_truncated(data)


def jpeg_data_truncated(data: bytes) -> bool:
    """True when the JPEG bytes ``data`` stop before the end-of-image marker.

    OpenCV decodes such a file anyway (libjpeg fills the missing rows with gray and prints an
    unnamed "Premature end of JPEG file" on stderr), so a cut-off download would silently pass
    as a half-gray image. Walks the marker segments to the first start-of-scan (skipping APPn
    blocks, whose EXIF thumbnail carries its own end marker), then looks for the end-of-image
    marker after it; bytes appended after it (e.g. motion-photo trailers) are fine. Data that
    is not JPEG returns False.
    """
    if not data.startswith(b"\xff\xd8"):
        return False
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # not a marker: malformed in a way OpenCV judges itself
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            # From the end: the marker is normally the last two bytes, and a forward search
            # stops at every 0xFF of the entropy-coded data (~20 us for a 20 kB file).
            return data.rfind(b"\xff\xd9", pos) == -1
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return True  # the headers themselves are cut off
