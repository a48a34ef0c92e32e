"""Two processes, one folder (issue 20, class 5): a run folder or an export folder is held by
one process (``p2p_deploy.locking.FolderLock``: flock, pid and host inside); the second
refuses in one line naming the holder; a dead holder's lock is reclaimed. Real processes, real
files, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from p2p_deploy.atomic import host_tag, no_space, write_problem
from p2p_deploy.errors import P2PError
from p2p_deploy.locking import LOCK_NAME, FolderBusy, FolderLock

HOLD = textwrap.dedent(
    """
    import sys, time
    from p2p_deploy.locking import FolderLock
    with FolderLock(sys.argv[1], sys.argv[2]):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def hold(folder: Path, command: str = "p2p train", seconds: float = 120) -> subprocess.Popen:
    """A real process holding ``folder``'s lock until killed (or ``seconds`` pass)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), command, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def p2p(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "p2p_deploy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_a_held_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    holder = hold(folder, "p2p export")
    try:
        with pytest.raises(FolderBusy) as info:
            FolderLock(folder, "p2p train").acquire()
        text = str(info.value)
        assert f"in use by p2p export (pid {holder.pid} on this host" in text and "\n" not in text
        record = json.loads((folder / LOCK_NAME).read_text())
        assert (record["pid"], record["host"]) == (holder.pid, host_tag())
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's flock: the next command reclaims the lock.
    with FolderLock(folder, "p2p train"):
        record = json.loads((folder / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["command"] == "p2p train"
    assert not (folder / LOCK_NAME).exists()  # released: the lock file goes


def test_a_stale_lock_file_of_a_dead_process_is_reclaimed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "x"
    folder.mkdir()
    stale = {"format": "p2p-deploy/lock", "pid": dead.pid, "host": host_tag(),
             "command": "p2p export"}  # fmt: skip
    (folder / LOCK_NAME).write_text(json.dumps(stale))
    with FolderLock(folder, "p2p export"):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_refused_lock_leaves_no_folder_it_made(tmp_path: Path) -> None:
    with FolderLock(tmp_path / "a" / "b", "p2p synth"):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()  # made by the lock, still empty: removed


@pytest.mark.slow
def test_two_trainings_of_one_folder(tmp_path: Path) -> None:
    """The second `p2p train --out X` refuses in one line naming the first; nothing of it is
    written into the first run's folder."""
    run = tmp_path / "run"
    holder = hold(run, "p2p train")
    try:
        r = p2p("train", "--out", str(run), "--image-size", "32", "--ngf", "8", "--ndf", "8",
                "--max-steps", "1", "--no-progress")  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"in use by p2p train (pid {holder.pid}" in lines[0], r.stderr
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # the holder's, nothing else


@pytest.mark.slow
def test_two_exports_into_one_folder(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    holder = hold(out, "p2p export")
    try:
        r = p2p("export", str(tiny_checkpoint), "--out", str(out), "--skip-parity")
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{out}: in use by p2p export (pid {holder.pid}" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # no model of the second
    # Once the first is gone, the same command works.
    r = p2p("export", str(tiny_checkpoint), "--out", str(out), "--skip-parity")
    assert r.returncode == 0, r.stderr
    assert (out / "model.onnx").is_file() and not (out / LOCK_NAME).exists()


def test_statvfs_failing_is_not_a_full_disk(tmp_path: Path) -> None:
    """The disk-full check took any statvfs error text as a full disk: a folder removed by
    another process read "No space left on device" with 70 GB free."""
    gone = tmp_path / "gone" / "f.bin"
    assert no_space(gone) is None
    assert write_problem(gone) == os.strerror(2)  # "No such file or directory"


def test_checkpoint_folder_removed_under_a_save_is_not_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a second training did to the first before the lock: removed its `.latest.tmp`."""
    from helpers import make_tiny_generator

    from p2p_deploy.models.card import ModelCard
    from p2p_deploy.models.weights import save_generator
    from p2p_deploy.train import checkpointing

    g = make_tiny_generator()
    card = ModelCard(generator=g.cfg, test_norm="stats")
    folder = tmp_path / "checkpoints" / "latest"

    def vanish(model, weights, c):  # noqa: ANN001 - save_generator's signature
        save_generator(model, weights, c)
        import shutil

        shutil.rmtree(Path(weights).parent)  # another process removes the folder
        raise RuntimeError("safetensors: No such file or directory")

    monkeypatch.setattr(checkpointing, "save_generator", vanish)  # the other process's act
    with pytest.raises(OSError) as info:
        checkpointing.save_checkpoint(folder, g, card, None)
    assert info.value.errno != 28 and "removed" in str(info.value)


@pytest.mark.slow
def test_sigterm_saves_the_current_training_step(tmp_path: Path) -> None:
    """SIGTERM (kill, docker stop, systemd, Slurm) is Ctrl-C: the step is saved, the command
    says how to resume, exit 143, and the folder lock is released."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_deploy", "train", "--out", str(run), "--image-size", "32",
         "--ngf", "8", "--ndf", "8", "--synthetic-train", "2", "--synthetic-val", "1",
         "--epochs", "1000", "--epochs-decay", "0", "--log-every", "1", "--no-progress"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    losses = run / "losses.csv"
    while time.monotonic() < deadline:  # a few steps in, before any epoch checkpoint
        if losses.is_file() and len(losses.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("terminated (SIGTERM): ") and "--resume" in last, err
    state = (run / "checkpoints" / "latest" / "generator.json").read_text()
    step = json.loads(state)["training"]["step"]
    assert f"holds step {step};" in last and step >= 1
    assert not (run / LOCK_NAME).exists()


def test_folder_lock_errors_are_p2p_errors() -> None:
    assert issubclass(FolderBusy, P2PError)
