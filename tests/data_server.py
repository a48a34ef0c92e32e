"""Archives of made images, and a local HTTP file server for download tests: it serves a
folder on 127.0.0.1 with byte-range (``Range: bytes=N-``) support, an ETag, and switches to
cut a response off halfway or stall.

Usage::

    with serve_folder(root) as server:
        url = server.base_url          # http://127.0.0.1:PORT
        server.cut_next_after = 1000   # the next body stops after 1000 bytes (connection closed)
        server.stall_seconds = 2.0     # every response waits this long first
        server.status["/x.sha256"] = 403   # answer this path with this HTTP error
        server.requests                # [(path, Range header or None), ...]
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

SPLITS = {"train": 3, "val": 1, "test": 2}


def aligned_png(seed: int, size: int = 32) -> bytes:
    """One aligned A|B image (size x 2*size, BGR noise), PNG-encoded."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive(
    path: Path,
    name: str = "facades",
    extra: list[tarfile.TarInfo] | None = None,
    extra_data: bytes = b"x",
) -> Path:
    """``path``: a gzip'd tar of ``name/{train,val,test}/N.png`` aligned images (+ ``extra``
    members, each holding ``extra_data`` when it is a file)."""
    with tarfile.open(path, "w:gz") as tar:
        seed = 0
        for split, n in SPLITS.items():
            for i in range(n):
                _add(tar, f"{name}/{split}/{i + 1}.png", aligned_png(seed))
                seed += 1
        for info in extra or []:
            if info.isfile():
                info.size = len(extra_data)
                tar.addfile(info, io.BytesIO(extra_data))
            else:
                tar.addfile(info)
    return path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    cut_next_after: int | None = None
    stall_seconds: float = 0.0
    requests: list[tuple[str, str | None]]
    status: dict[str, int]

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client that timed out on purpose closes its socket: not worth a traceback

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if srv.stall_seconds:
            time.sleep(srv.stall_seconds)
        if self.path in srv.status:
            self.send_error(srv.status[self.path])
            return
        path = srv.root / urllib.parse.unquote(self.path.lstrip("/"))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'  # noqa: S324 - an ETag, not security
        start = 0
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            if_range = self.headers.get("If-Range")
            if m and (if_range is None or if_range == etag):
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        if srv.cut_next_after is not None:
            body, srv.cut_next_after = body[: srv.cut_next_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[_Server]:
    """Serve ``root`` on an ephemeral port of 127.0.0.1 until the block ends."""
    srv = _Server(("127.0.0.1", 0), RangeHandler)
    srv.root, srv.requests, srv.status = root, [], {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
