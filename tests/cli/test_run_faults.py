"""`p2p run` faults through the real command line (subprocesses, so that what reaches file
descriptor 2 is what a user sees): a full disk (real tmpfs), a SIGKILL's leftovers, native
libraries' own stderr lines (issue 11 items 2, 7 and messages)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.media_files import random_bgr, write_video
from smallfs import fill, tmpfs

OURS = ("model: ", "failed: ", "done ", "failures listed in ", "outputs in ", "error: ")


def p2p_run(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "p2p_deploy", "run", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _not_ours(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if not ln.startswith(OURS)]


@pytest.mark.slow
def test_full_disk_is_one_line_per_item_and_the_right_exit_code(
    tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), random_bgr(32, 32, 0))
    write_video(src / "clip.avi", 4)
    with tmpfs(tmp_path / "fs", "256k") as fs:
        out = fs / "out"
        filler = fill(fs)
        r = p2p_run(str(src), "-e", str(tiny_onnx_fp32), "-o", str(out))
        assert r.returncode == 1, r.stderr  # nothing could be written
        assert "Traceback" not in r.stderr and _not_ours(r.stderr) == [], r.stderr
        failed = [ln for ln in r.stderr.splitlines() if ln.startswith("failed: ")]
        assert len(failed) == 2 and all("No space left on device" in ln for ln in failed), failed
        assert (
            f"error: {out / 'failures.json'}: cannot write the list of failures "
            "(No space left on device)"
        ) in r.stderr
        assert not [p for p in fs.rglob("*") if p.is_file() and p != filler and p.suffix]
        filler.unlink()
        r = p2p_run(str(src), "-e", str(tiny_onnx_fp32), "-o", str(out))
        assert r.returncode == 0 and "done 2, skipped 0" in r.stderr, r.stderr


@pytest.mark.slow
def test_sigkill_leftovers_are_removed_by_the_next_run(
    tmp_path: Path, tiny_onnx_fp32: Path
) -> None:
    clip = write_video(tmp_path / "clip.avi", 400, size=(160, 120))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_deploy", "run", str(clip), "-e", str(tiny_onnx_fp32),
         "-o", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not list(out.glob(".clip.p2ptmp-*.tmp.mp4")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # no handler runs: the temporary video stays
    proc.communicate(timeout=30)
    left = list(out.glob(".clip.p2ptmp-*.tmp.mp4"))
    assert len(left) == 1 and not (out / "clip.mp4").exists()

    r = p2p_run(str(clip), "-e", str(tiny_onnx_fp32), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert f"removed 1 temporary file(s) that killed runs left in {out}" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [".p2p-output", "clip.mp4"]
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 400
    cap.release()


def _bad_pngs(folder: Path) -> None:
    """A PNG with a damaged chunk (libpng: "IDAT: CRC error") and a cut one (OpenCV: "[ WARN
    ...] PNG input buffer is incomplete")."""
    png = bytearray(cv2.imencode(".png", random_bgr(48, 48, 0))[1].tobytes())
    cut = bytes(png[: len(png) // 2])
    png[100:120] = b"\x00" * 20
    (folder / "crc.png").write_bytes(bytes(png))
    (folder / "cut.png").write_bytes(cut)


def test_libpng_and_opencv_lines_never_reach_stderr(tmp_path: Path, tiny_onnx_fp32: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _bad_pngs(src)
    cv2.imwrite(str(src / "ok.png"), random_bgr(24, 24, 1))
    r = p2p_run(str(src), "-e", str(tiny_onnx_fp32), "-o", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert _not_ours(r.stderr) == [], r.stderr
    assert r.stderr.count("failed: ") == 2


@pytest.mark.slow
def test_training_data_reads_are_quiet_and_other_threads_lines_are_kept(tmp_path: Path) -> None:
    """The training reader (train/datasets.py) decodes the same way; a line written by another
    thread while a decode has fd 2 captured still reaches the terminal."""
    _bad_pngs(tmp_path)
    script = f"""
import sys, threading, time
from pathlib import Path
from p2p_deploy.train.datasets import read_rgb
from p2p_deploy.media.images import read_image
from p2p_deploy.media.native import captured_native_stderr, guarded_python_stderr

def chatter():
    for i in range(50):
        print(f"thread line {{i}}", file=sys.stderr, flush=True)
        time.sleep(0.001)

with guarded_python_stderr():  # as `p2p` runs every command
    t = threading.Thread(target=chatter)
    t.start()
    for _ in range(20):
        for name in ("crc.png", "cut.png"):
            assert read_rgb(Path({str(tmp_path)!r}) / name) is None
            try:
                read_image(Path({str(tmp_path)!r}) / name)
            except Exception as exc:
                pass
    with captured_native_stderr():
        print("inside a capture", file=sys.stderr, flush=True)
    t.join()
print("ours: done", file=sys.stderr)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "libpng" not in r.stderr and "WARN" not in r.stderr, r.stderr
    # Every line of the other thread is kept whole: its writes wait for a capture window to
    # close instead of mixing with libpng's partial lines (media/native.py, GuardedStderr).
    assert sorted(ln for ln in lines if ln.startswith("thread line")) == sorted(
        f"thread line {i}" for i in range(50)
    ), lines
    assert "inside a capture" in lines and lines[-1] == "ours: done"
    assert np.all([ln.startswith(("thread line", "inside", "ours")) for ln in lines]), lines


def test_a_run_wide_filter_drops_native_lines_without_a_lock_per_call() -> None:
    """``filtered_native_stderr`` (what the pipeline runs under): native libraries' lines on
    descriptor 2 are dropped, any other line is passed on, Python's own lines go straight to
    the real stderr (even in the middle of a native library's partial line), a capture window
    inside it takes no lock (the lock per window serialised every decode of a multithreaded
    run), and descriptor 2 is back afterwards."""
    script = """
import os, sys, threading
from p2p_deploy.media import native
from p2p_deploy.media.native import captured_native_stderr, filtered_native_stderr

with filtered_native_stderr():
    os.write(2, b"libpng error: IDAT: CRC error\\n")
    os.write(2, b"[ WARN:0@0.1] global loadsave.cpp (1) imread_ ...\\n")
    os.write(2, b"a line of no known library\\n")
    os.write(2, b"libpng error: ")  # libpng writes its message and newline apart
    print("ours: in the middle", file=sys.stderr, flush=True)
    os.write(2, b"bad CRC\\n")
    held, release = threading.Event(), threading.Event()

    def hold():
        with native._LOCK:
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    done = threading.Event()

    def decode_like():
        with captured_native_stderr():
            os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\\n")
        done.set()

    threading.Thread(target=decode_like).start()
    assert done.wait(5), "a window inside the filter waited for the lock"
    release.set()
    t.join()
print("ours: after", file=sys.stderr, flush=True)
os.write(2, b"fd 2 restored\\n")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "libpng" not in r.stderr and "WARN" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert sorted(lines) == sorted(
        ["a line of no known library", "ours: in the middle", "ours: after", "fd 2 restored"]
    ), lines
    assert lines[-2:] == ["ours: after", "fd 2 restored"]


def _on_a_terminal(script: str, timeout: float = 60) -> bytes:
    """What ``script`` writes to its stdout and stderr, both a pseudo-terminal."""
    import os
    import pty
    import select

    main_end, term = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80"}
    env.pop("FORCE_COLOR", None), env.pop("TTY_COMPATIBLE", None), env.pop("NO_COLOR", None)
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=term, stdout=term, stderr=term, env=env
    )
    os.close(term)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([main_end], [], [], 1)[0]:
                if child.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(main_end, 1 << 16)
            except OSError:  # EIO: the child is gone
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main_end)
        child.kill() if child.poll() is None else None
        child.wait()
    assert child.returncode == 0, out
    return out


def test_the_progress_bar_still_draws_on_a_terminal_during_a_run_wide_filter() -> None:
    """During the filter descriptor 2 is its pipe, yet Python's stderr is still the terminal:
    rich keeps redrawing its progress bar (it asks ``sys.stderr.isatty()`` at each refresh)
    and prints Python's own stderr lines above the bar, as without the filter (it had the bar
    frozen for the whole run, and such lines written over it)."""
    script = """
import sys, time
from rich.console import Console
from rich.progress import Progress
from p2p_deploy.media.native import filtered_native_stderr, guarded_python_stderr

with guarded_python_stderr():  # as `p2p run`: the bar, then the run under the filter
    with Progress(console=Console(stderr=True), refresh_per_second=20) as bar:
        task = bar.add_task("frames", total=40)
        with filtered_native_stderr():
            print(f"tty: {sys.stderr.isatty()}", file=sys.stderr)
            for _ in range(40):
                bar.advance(task, 1)
                time.sleep(0.02)
"""
    out = _on_a_terminal(script)
    assert b"tty: True" in out, out
    # Printed through rich, above the bar: the bar's line is cleared first.
    assert b"\r\x1b[2Ktty: True" in out, out
    # ~16 refreshes in 0.8 s; a bar frozen during the run draws twice (start and end).
    assert out.count(b"frames") >= 6, out


def test_the_filter_ends_at_once_while_a_child_holds_its_pipe() -> None:
    """A child process started during the filter inherits its pipe and may hold it for ever:
    the filter still ends at once (no waiting for an end of file) and passes on every line
    written before it ended."""
    script = """
import os, subprocess, sys, time
from p2p_deploy.media.native import filtered_native_stderr

with filtered_native_stderr():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\\n")
    os.write(2, b"the last line before the end\\n")
    t = time.monotonic()
took = time.monotonic() - t
child.kill()
child.wait()
print(f"ended in {took:.2f} s", file=sys.stderr)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "the last line before the end" and "libpng" not in r.stderr, lines
    assert lines[-1].startswith("ended in ") and float(lines[-1].split()[2]) < 2.0, lines


def test_ctrl_c_while_the_filter_ends_still_gives_descriptor_2_back() -> None:
    """A second Ctrl-C landing while the filter ends (the first one is stopping the run): fd 2
    is the real stderr again, the pump thread has ended, the interrupt is raised, and the
    next filter in the same process (a notebook's next run) filters as the first did."""
    script = """
import os, sys, threading
from p2p_deploy.media import native
from p2p_deploy.media.native import filtered_native_stderr

real_join = threading.Thread.join
hits = []

def interrupted_join(self, *a, **k):
    if self.name == "p2p-native-stderr" and not hits:
        hits.append(1)
        raise KeyboardInterrupt  # the second Ctrl-C, inside the filter's cleanup
    return real_join(self, *a, **k)

threading.Thread.join = interrupted_join
before = os.fstat(2)
try:
    with filtered_native_stderr():
        os.write(2, b"libpng error: first run\\n")
except KeyboardInterrupt:
    print("interrupt raised", file=sys.stderr, flush=True)
threading.Thread.join = real_join
after = os.fstat(2)
assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino), "fd 2 left on the pipe"
assert not [t for t in threading.enumerate() if t.name == "p2p-native-stderr"], "pump alive"
assert native._REAL is None
with filtered_native_stderr():
    os.write(2, b"libpng error: second run\\n")
    os.write(2, b"kept line\\n")
os.write(2, b"fd 2 restored\\n")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["interrupt raised", "kept line", "fd 2 restored"], r.stderr
