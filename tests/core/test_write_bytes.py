"""``atomic.write_bytes`` (every image ``p2p run`` writes) and ``paths.Resolver`` (the link
checks of a run's plan): real files, real links, real permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from p2p_deploy import atomic
from p2p_deploy.atomic import clean_stale_temps, is_stale_temp, write_bytes
from p2p_deploy.paths import Resolver, escape_reason


def test_write_bytes_makes_the_folder_gives_the_usual_mode_and_takes_any_buffer(
    tmp_path: Path,
) -> None:
    final = tmp_path / "new" / "deeper" / "a.jpg"
    data = np.arange(100_000, dtype=np.uint32).view(np.uint8).reshape(-1, 1)  # an encoder's shape
    write_bytes(final, data)
    assert final.read_bytes() == data.tobytes()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(final.stat().st_mode) == 0o666 & ~umask
    write_bytes(final, b"second")  # replaces its own earlier output
    write_bytes(str(tmp_path / "b.txt"), memoryview(b"x" * 10))
    assert final.read_bytes() == b"second" and (tmp_path / "b.txt").read_bytes() == b"x" * 10
    assert sorted(p.name for p in final.parent.iterdir()) == ["a.jpg"]


def test_write_bytes_finishes_a_short_write_and_leaves_nothing_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def short_write(fd: int, data: memoryview) -> int:  # what a signal or a pipe may do
        return real_write(fd, data[:7])

    monkeypatch.setattr(atomic.os, "write", short_write)
    write_bytes(tmp_path / "a.bin", bytes(range(256)) * 4)
    assert (tmp_path / "a.bin").read_bytes() == bytes(range(256)) * 4

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_bytes(tmp_path / "b.bin", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary file left


def test_write_bytes_into_a_file_that_is_in_the_way_names_the_os_reason(tmp_path: Path) -> None:
    (tmp_path / "samples").write_text("a file, not a folder")
    with pytest.raises(NotADirectoryError):
        write_bytes(tmp_path / "samples" / "a.png", b"x")


def test_a_temporary_name_of_write_bytes_is_recognised_as_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    write_bytes(tmp_path / "photo.v2.jpg", b"x")
    monkeypatch.undo()
    (name,) = seen
    assert name.startswith(".photo.v2.p2ptmp-") and name.endswith(".tmp.jpg")
    # A copy of it under a dead writer's pid is stale, and cleaned: the rule for killed runs.
    dead = tmp_path / name.replace(f"-{os.getpid()}-", "-999999999-")
    dead.write_bytes(b"left by a killed run")
    assert is_stale_temp(dead) and clean_stale_temps(tmp_path) == [dead]


def test_resolver_agrees_with_path_resolve_through_links(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "f.png").write_bytes(b"x")
    (tmp_path / "dirlink").symlink_to(real)
    (real / "sub" / "filelink.png").symlink_to(real / "sub" / "f.png")
    (real / "sub" / "outside.png").symlink_to(tmp_path / "elsewhere.png")  # dangling
    (real / "sub" / "up.png").symlink_to("../../real/sub/f.png")  # relative
    resolve = Resolver()
    paths = [
        tmp_path / "dirlink" / "sub" / "f.png",
        tmp_path / "dirlink" / "sub" / "filelink.png",
        tmp_path / "dirlink" / "sub" / "outside.png",
        tmp_path / "dirlink" / "sub" / "up.png",
        tmp_path / "dirlink" / "sub" / "missing.png",
        tmp_path / "dirlink" / "sub" / "..",
        tmp_path / "dirlink" / "sub",
        Path("relative") / "x.png",
    ]
    for p in paths * 2:  # the second pass answers from the resolved folders
        assert resolve(p) == p.resolve(), p


def test_resolver_agrees_with_path_resolve_where_a_name_cannot_be_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that cannot be searched (no x permission; faked here, as root bypasses it):
    ``Path.resolve`` takes the name as it is, and so does the Resolver, instead of raising
    ``PermissionError`` (``Path.is_symlink`` does on Python 3.10/3.11), which would abort the
    plan of a whole ``--overwrite`` run over one output subfolder."""
    (tmp_path / "out" / "locked").mkdir(parents=True)
    locked = tmp_path / "out" / "locked" / "a.png"
    real_stat, real_lstat = os.stat, os.lstat

    def denied(real):  # noqa: ANN001, ANN202 - wraps os.stat / os.lstat
        def call(path, *args, **kwargs):  # noqa: ANN001, ANN202
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", denied(real_stat))
    monkeypatch.setattr(os, "lstat", denied(real_lstat))
    assert Resolver()(locked) == locked.resolve() == locked
    assert escape_reason(tmp_path / "out", "locked/a.png", Resolver()) is None


def test_a_name_taken_by_a_planted_link_is_skipped_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary names count up (the prefix holds host and pid): a file or a link already at
    the next name (another process that had this pid, a planted link) is never opened."""
    import itertools

    monkeypatch.setattr(atomic, "_SEQUENCE", itertools.count(5))
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    prefix = atomic.temp_prefix("a")
    planted = tmp_path / f"{prefix}5.tmp.jpg"
    planted.symlink_to(victim)
    (tmp_path / f"{prefix}6.tmp.jpg").write_text("another file")
    write_bytes(tmp_path / "a.jpg", b"output")
    assert (tmp_path / "a.jpg").read_bytes() == b"output"
    assert victim.read_text() == "the user's file" and planted.is_symlink()


def test_a_name_ending_in_a_dot_gets_a_temporary_name_that_is_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (seen.append(a), real_replace(a, b)))
    write_bytes(tmp_path / "odd.", b"x")
    monkeypatch.undo()
    dead = Path(seen[0].replace(f"-{os.getpid()}-", "-999999999-"))
    dead.write_bytes(b"left by a killed run")
    assert (tmp_path / "odd.").read_bytes() == b"x" and clean_stale_temps(tmp_path) == [dead]
