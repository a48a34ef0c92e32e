"""Nothing a user or an archive names leaves its folder (issue 20, class 2): one containment
check (``p2p_deploy.paths.contained``) for archive members, ``--triton-name``, ``--split`` and
dataset names; real tarfiles crafted with link members, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from data_server import SPLITS, aligned_png, make_archive, serve_folder

from p2p_deploy.cli import main
from p2p_deploy.errors import DataError, UsageError
from p2p_deploy.paths import contained, escape_reason
from p2p_deploy.train import dataset_catalog
from p2p_deploy.train.download import DownloadOptions, download_dataset, safe_extract


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "an empty name"),
        ("/etc/passwd", "an absolute path"),
        ("C:/x", "an absolute path"),
        ("a/../../x", "'..' in the path"),
        ("..", "'..' in the path"),
        ("a\x00b", "a NUL character"),
    ],
)
def test_escape_reasons(tmp_path: Path, name: str, why: str) -> None:
    assert why in (escape_reason(tmp_path, name) or "")
    with pytest.raises(UsageError, match="must stay inside"):
        contained(tmp_path, name, "--thing")


def test_links_on_the_way_are_followed(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path)  # a link inside, to a parent
    assert "leads outside" in (escape_reason(tmp_path / "root", "out/x") or "")
    assert contained(tmp_path / "root", "a/b.png", "x") == tmp_path / "root" / "a" / "b.png"


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A gzip'd tar of the facades layout plus crafted ``members``, in order."""
    with tarfile.open(path, "w:gz") as tar:
        for split, n in SPLITS.items():
            for i in range(n):
                data = aligned_png(i)
                info = tarfile.TarInfo(f"facades/{split}/{i + 1}.png")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _link(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _file(name: str, data: bytes = b"owned") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _outside_files(tmp_path: Path, inside: list[Path]) -> list[Path]:
    return [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not any(p.is_relative_to(d) for d in inside)
    ]


# The escapes tarfile's `data` filter let through before Python 3.11.13 (CVE-2025-4517 and
# friends): links whose targets are checked before the links they go through exist.
ESCAPES = {
    "symlink-chain": [
        _link("facades/a", "."),
        _link("facades/b", "a/.."),
        _link("facades/c", "b/.."),  # c -> facades/.. at extraction: outside once chained
        _file("facades/c/victim.txt"),
    ],
    "symlink-then-file": [_link("facades/out", "../../.."), _file("facades/out/victim.txt")],
    "hardlink-outside": [_link("facades/h", "../../victim.txt", hard=True)],
    "hardlink-inside": [_link("facades/h", "facades/train/1.png", hard=True)],
    "symlink-inside": [_link("facades/s", "train/1.png")],
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_crafted_archives_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    """The issue's escape: a crafted archive overwrote files outside --to and the download
    reported success. Any link member now refuses the archive, before anything is written."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _tar(mirror / "facades.tar.gz", ESCAPES[case])
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    to = tmp_path / "deep" / "datasets"
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match="refused unsafe member .*link"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
    assert victim.read_text() == "the user's"
    assert _outside_files(tmp_path, [mirror, victim]) == []
    assert sorted(p.name for p in to.iterdir()) == []  # no dataset, no partial, no temp folder


def _path_max_escape(dest_len: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """CVE-2025-4517's pattern: symlinks whose expansion passes PATH_MAX, where
    ``os.path.realpath`` (used by tarfile's ``data`` filter and by this project's earlier
    check) stops resolving, so that ``escape`` is judged inside while the kernel follows it
    three levels up. Against the earlier code (Python 3.11.7) it wrote ``victim.txt`` outside
    ``--to`` and the download reported success."""
    steps = "abcdefghijklmnop"
    comp = "d" * ((os.pathconf("/", "PC_PATH_MAX") - dest_len - 1) // (len(steps) + 1))
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    path = ""
    for step in steps:
        folder = tarfile.TarInfo(os.path.join(path, comp))
        folder.type = tarfile.DIRTYPE
        members += [(folder, None), _link(os.path.join(path, step), comp)]
        path = os.path.join(path, comp)
    far = os.path.join(*steps, "l" * 254)
    members.append(_link(far, os.path.join(*[".."] * len(steps))))
    members.append(_link("escape", os.path.join(far, "..", "..", "..")))
    members.append(_file("escape/victim.txt", b"overwritten"))
    return members


def test_the_path_max_escape_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    to = tmp_path / "datasets"
    dest_len = len(str(to / ".facades.unpacking-xxxxxxxx"))
    path = mirror / "facades.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in _path_max_escape(dest_len):
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match="refused unsafe member .*link"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
    assert victim.read_text() == "the user's"
    assert sorted(p.name for p in to.iterdir()) == []


@pytest.mark.parametrize(
    ("info", "why"),
    [
        (tarfile.FIFOTYPE, "special file"),
        (tarfile.CHRTYPE, "special file"),
        (tarfile.BLKTYPE, "special file"),
    ],
)
def test_special_members_are_refused(tmp_path: Path, info: bytes, why: str) -> None:
    member = tarfile.TarInfo("facades/dev")
    member.type = info
    arc = _tar(tmp_path / "a.tar.gz", [(member, None)])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match=why):
        safe_extract(arc, dest)
    assert list(dest.iterdir()) == []


def test_a_member_given_twice_is_refused(tmp_path: Path) -> None:
    arc = _tar(tmp_path / "a.tar.gz", [_file("facades/train/1.png", b"second copy")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="given twice"):
        safe_extract(arc, dest)


def test_extraction_works_without_tarfile_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.10.0-3.10.11 and 3.11.0-3.11.3 (Debian 12's python3 is 3.11.2) have no
    extraction filters and no ``tarfile.FilterError``: every download was a traceback. The
    project's own extraction needs neither."""
    for attr in ("FilterError", "data_filter", "tar_filter", "fully_trusted_filter"):
        monkeypatch.delattr(tarfile, attr, raising=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_archive(mirror / "facades.tar.gz")
    res = download_dataset(DownloadOptions("facades", tmp_path / "d", mirror.as_uri()))
    assert res.splits == SPLITS
    assert (res.folder / "train" / "1.png").read_bytes() == aligned_png(0)
    assert oct((res.folder / "train" / "1.png").stat().st_mode & 0o777) == oct(0o644)
    _tar(mirror / "facades.tar.gz", ESCAPES["symlink-chain"])  # and the refusal still works
    with pytest.raises(DataError, match="refused unsafe member"):
        download_dataset(DownloadOptions("facades", tmp_path / "e", mirror.as_uri()))


def test_403_on_the_optional_checksum_does_not_block(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_archive(mirror / "facades.tar.gz")
    with serve_folder(mirror) as srv:
        srv.status["/facades.tar.gz.sha256"] = 403
        res = download_dataset(DownloadOptions("facades", tmp_path / "d", srv.base_url))
    assert res.splits == SPLITS and res.checksum is None


def test_archive_whose_top_level_is_a_split_keeps_it(tmp_path: Path) -> None:
    """An archive holding train/ at its top level was unpacked without its split: DIR/NAME
    held the images and no train/."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "mini.tar.gz", "w:gz") as tar:
        for i in range(2):
            data = aligned_png(i)
            info = tarfile.TarInfo(f"train/{i}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    res = download_dataset(DownloadOptions("mini", tmp_path / "d", mirror.as_uri()))
    assert res.splits == {"train": 2} and (res.folder / "train" / "0.png").is_file()


def test_catalogue_checksums_are_recorded_only_when_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No digest is invented: none could be verified here (the mirror is unreachable). One
    recorded for an entry is checked on any mirror and beats the mirror's own file."""
    assert dataset_catalog.DEFAULT_MIRROR.startswith("https://")
    assert all(e.sha256 is None for e in dataset_catalog.CATALOG)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_archive(mirror / "facades.tar.gz")
    real = hashlib.sha256((mirror / "facades.tar.gz").read_bytes()).hexdigest()
    (mirror / "facades.tar.gz.sha256").write_text(real)  # the mirror agrees with itself
    wrong = "0" * 64
    entries = tuple(
        dataclasses.replace(e, sha256=wrong) if e.name == "facades" else e
        for e in dataset_catalog.CATALOG
    )
    monkeypatch.setattr(dataset_catalog, "CATALOG", entries)
    with pytest.raises(DataError, match="sha256 mismatch .*the catalogue's says 000000000000"):
        download_dataset(DownloadOptions("facades", tmp_path / "d", mirror.as_uri()))
    assert not (tmp_path / "d" / "facades").exists()


def test_triton_name_and_split_stay_inside(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = main(["export", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--triton",
                 str(tmp_path / "repo"), "--triton-name", ".."])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 64 and "--triton-name '..': must be one plain name" in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "repo").exists()
    code = main(["eval", str(tiny_checkpoint), "--data", str(tmp_path), "--split", "../..",
                 "--out", str(tmp_path / "e")])  # fmt: skip
    assert code == 64 and "--split '../..'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "e")
