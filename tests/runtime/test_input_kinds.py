"""Inputs that are not plain readable files (issue 20, class 3): a FIFO, a socket, a device
file, a dangling link, an unreadable file, a folder that cannot be listed or entered, a name
holding a newline. Each is one failure line naming it (escaped: one failure, one line), the
other inputs are processed, nothing hangs, nothing is skipped without a word. One input-kind
check: ``p2p_deploy.media.inputs``. Real FIFOs, sockets, device nodes and permissions; the
commands run as real subprocesses (a hang is a timeout, not a stuck test run)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.media_files import random_bgr, write_video

from p2p_deploy.errors import DataError
from p2p_deploy.media.images import read_image
from p2p_deploy.media.inputs import list_folder, read_input_bytes

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def p2p(*args: str, unprivileged: bool = False, timeout: int = 120) -> subprocess.CompletedProcess:
    """The real command; ``unprivileged``: without root's power to read anything (the
    capabilities that bypass file permissions are dropped), so permissions apply."""
    cmd = [sys.executable, "-m", "p2p_deploy", *args]
    if unprivileged and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", "--inh-caps", caps, "--bounding-set", caps, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


def failed_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("failed: ")]


@contextlib.contextmanager
def unix_socket(path: Path) -> Iterator[Path]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    try:
        yield path
    finally:
        s.close()


def test_special_files_and_odd_names_fail_one_line_each(
    tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), random_bgr(32, 32, 0))
    os.mkfifo(src / "fifo.png")  # opening it for reading would block: the old hang
    (src / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (src / "bad\nname.png").write_bytes(b"not an image")  # a newline in a file name
    with contextlib.ExitStack() as stack:
        stack.enter_context(unix_socket(src / "sock.png"))
        try:
            os.mknod(src / "dev.png", stat.S_IFCHR | 0o600, os.makedev(1, 3))
            device = True
        except OSError:  # not allowed here (not root): the other kinds still count
            device = False
        r = p2p("run", str(src), "-e", str(tiny_onnx_fp32), "-o", str(tmp_path / "out"),
                "--no-progress")  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = failed_lines(r.stderr)
    expect = {
        "fifo.png": "not a regular file (a FIFO (named pipe))",
        "sock.png": "not a regular file (a socket)",
        "gone.png": "a link to a missing file",
        "bad\\nname.png": "corrupt or truncated image",
    }
    if device:
        expect["dev.png"] = "not a regular file (a character device)"
    assert len(lines) == len(expect), r.stderr
    for name, why in expect.items():
        assert any(f"{src / name}: {why}" in ln for ln in lines), (name, r.stderr)
    assert "done 1," in r.stderr and (tmp_path / "out" / "a.png").is_file()


def test_unreadable_files_and_folders_are_named_not_skipped(
    tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    src = tmp_path / "in"
    for d in ("ok", "nolist", "noenter"):
        (src / d).mkdir(parents=True)
        cv2.imwrite(str(src / d / "x.png"), random_bgr(32, 32, 1))
    cv2.imwrite(str(src / "u.png"), random_bgr(32, 32, 2))
    os.chmod(src / "u.png", 0)  # unreadable file
    os.chmod(src / "nolist", 0o300)  # can enter, cannot list: was skipped without a word
    os.chmod(src / "noenter", 0o600)  # can list, cannot enter: was a traceback
    try:
        r = p2p("run", str(src), "-e", str(tiny_onnx_fp32), "-o", str(tmp_path / "out"),
                "--no-progress", unprivileged=True)  # fmt: skip
    finally:
        for d in ("nolist", "noenter"):
            os.chmod(src / d, 0o755)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = failed_lines(r.stderr)
    assert len(lines) == 3, r.stderr
    assert any(f"{src / 'u.png'}: cannot read file (Permission denied)" in ln for ln in lines)
    nolist = f"{src / 'nolist'}: cannot list the folder (Permission denied)"
    assert any(nolist in ln for ln in lines)
    assert any(f"{src / 'noenter'}: cannot enter the folder (Permission denied)" in ln
               for ln in lines)  # fmt: skip
    assert "done 1," in r.stderr and (tmp_path / "out" / "ok" / "x.png").is_file()


def test_a_fifo_given_as_input_is_one_line(tmp_path: Path, tiny_onnx_fp32: Path) -> None:
    os.mkfifo(tmp_path / "f.png")
    r = p2p("run", str(tmp_path / "f.png"), "-e", str(tiny_onnx_fp32), "--no-progress")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "f.png: not a regular file (a FIFO (named pipe)); not read." in r.stderr


def test_eval_with_a_fifo_in_its_split(tmp_path: Path, tiny_onnx_fp32: Path) -> None:
    split = tmp_path / "data" / "test"
    split.mkdir(parents=True)
    cv2.imwrite(str(split / "a.png"), random_bgr(32, 64, 3))
    os.mkfifo(split / "b.png")
    r = p2p("eval", str(tiny_onnx_fp32), "--data", str(tmp_path / "data"), "--out",
            str(tmp_path / "e"), "--no-progress")  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"failed: {split / 'b.png'}: not a regular file" in r.stderr
    assert "1 images of" in r.stderr


def test_training_data_and_calibration_skip_special_files_by_name(tmp_path: Path) -> None:
    from p2p_deploy.export.calibration import folder_images
    from p2p_deploy.train.datasets import scan_aligned

    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), random_bgr(32, 64, i))
    os.mkfifo(folder / "fifo.png")
    good, bad = scan_aligned(folder)  # returns: the FIFO was never opened
    assert len(good) == 3 and bad == [(folder / "fifo.png", "not a regular file (a FIFO (named "
                                       "pipe)); not read")]  # fmt: skip
    cs = folder_images(folder, 32, calib_count=2, holdout=1)
    assert len(cs.calib) == 2 and cs.skipped == 1
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.avi", 3)
    write_video(videos / "b.avi", 3)
    with pytest.raises(DataError, match=r"--calib holds only videos \(2 video\(s\)"):
        folder_images(videos, 32)


def test_read_input_bytes_never_opens_what_is_not_a_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    with pytest.raises(DataError, match="a FIFO"):
        read_input_bytes(tmp_path / "f")
    with pytest.raises(DataError, match="a folder"):
        read_input_bytes(tmp_path)
    (tmp_path / "ok").write_bytes(b"abc")
    assert read_input_bytes(tmp_path / "ok") == b"abc"
    listing = list_folder(tmp_path)
    assert listing.files == ["ok"] and listing.problems[0][0] == tmp_path / "f"


def _with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF APP1 segment holding only the orientation tag."""
    tiff = (
        b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
        + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    )  # fmt: skip
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    return jpeg[:2] + app1 + jpeg[2:]


def test_an_image_is_read_as_a_viewer_shows_it(tmp_path: Path) -> None:
    """A phone photo stored landscape with "rotate 90" in its EXIF: viewers show it portrait,
    and so do run, eval, training and calibration now (they shared IMREAD_UNCHANGED, which
    ignores the orientation)."""
    from p2p_deploy.media.pairs import load_rgb

    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # a white band on the left
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    path = tmp_path / "phone.jpg"
    path.write_bytes(_with_orientation(buf.tobytes(), 6))
    shown = read_image(path)
    assert shown.shape == (40, 20, 3)  # portrait
    assert shown[:5].mean() > 200 and shown[-5:].mean() < 50  # the band is on top now
    assert load_rgb(path).shape == (40, 20, 3)
