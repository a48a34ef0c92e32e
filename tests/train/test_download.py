"""`p2p data download` logic against a real HTTP server on 127.0.0.1 (with Range support)
serving tarballs built here from images made here."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest
from data_server import SPLITS, aligned_png, make_archive, serve_folder

from p2p_deploy.errors import DataError
from p2p_deploy.train import download as dl
from p2p_deploy.train.dataset_catalog import CATALOG, find_entry
from p2p_deploy.train.download import DownloadOptions, download_dataset, safe_extract


@pytest.fixture()
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    root.mkdir()
    make_archive(root / "facades.tar.gz")
    return root


def _files_outside(tmp_path: Path, to: Path, mirror: Path) -> list[Path]:
    """Files under tmp_path that are neither in ``to`` nor in the mirror."""
    return [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_relative_to(to) and not p.is_relative_to(mirror)
    ]


def test_catalog_names_directions_and_no_invented_sizes() -> None:
    names = [e.name for e in CATALOG]
    assert names == ["facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"]
    assert find_entry("facades").usual_direction == "BtoA"
    assert find_entry("maps").usual_direction == "AtoB"
    assert all(e.size == "unknown" for e in CATALOG)
    with pytest.raises(DataError, match="unknown dataset.*facades"):
        find_entry("nope")


def test_full_download_with_checksum(tmp_path: Path, mirror: Path) -> None:
    digest = hashlib.sha256((mirror / "facades.tar.gz").read_bytes()).hexdigest()
    (mirror / "facades.tar.gz.sha256").write_text(f"{digest}  facades.tar.gz\n")
    to = tmp_path / "datasets"
    seen: list[tuple[int, int | None]] = []
    with serve_folder(mirror) as srv:
        res = download_dataset(
            DownloadOptions("facades", to, srv.base_url), lambda d, t: seen.append((d, t))
        )
    assert res.folder == to / "facades" and not res.already_present
    assert res.splits == SPLITS and res.checksum == "sha256 verified"
    size = (mirror / "facades.tar.gz").stat().st_size
    assert res.downloaded_bytes == size and res.resumed_from == 0
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    # Extracted bytes are the archive's images; nothing but the folder is left in --to.
    assert (to / "facades" / "train" / "1.png").read_bytes() == aligned_png(0)
    assert sorted(p.name for p in to.iterdir()) == ["facades"]
    assert res.train_hint() == f"p2p train --data {to / 'facades'} --direction BtoA"
    # A second call finds the folder and downloads nothing.
    again = download_dataset(DownloadOptions("facades", to, "http://127.0.0.1:9"))
    assert again.already_present and again.downloaded_bytes == 0


def test_cut_off_download_resumes_with_range(tmp_path: Path, mirror: Path) -> None:
    to = tmp_path / "datasets"
    size = (mirror / "facades.tar.gz").stat().st_size
    half = size // 2
    with serve_folder(mirror) as srv:
        srv.cut_next_after = half
        with pytest.raises(DataError, match=f"stopped after {half} of {size} bytes.*resume"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
        part = to / "facades.tar.gz.part"
        assert part.stat().st_size == half  # the partial file is kept beside the target
        assert not (to / "facades").exists()  # no half-made dataset folder
        res = download_dataset(DownloadOptions("facades", to, srv.base_url))
        ranges = [r for p, r in srv.requests if p == "/facades.tar.gz"]
    assert ranges == [None, f"bytes={half}-"]
    assert res.resumed_from == half and res.downloaded_bytes == size - half
    assert res.splits == SPLITS and not part.exists()


def test_complete_partial_and_stale_unpacking_folder(tmp_path: Path, mirror: Path) -> None:
    to = tmp_path / "datasets"
    to.mkdir()
    whole = (mirror / "facades.tar.gz").read_bytes()
    (to / "facades.tar.gz.part").write_bytes(whole)  # killed after the last byte arrived
    (to / ".facades.unpacking-x1" / "facades").mkdir(parents=True)  # killed mid-extraction
    with serve_folder(mirror) as srv:
        res = download_dataset(DownloadOptions("facades", to, srv.base_url))
        ranges = [r for p, r in srv.requests if p == "/facades.tar.gz"]
    assert ranges == [f"bytes={len(whole)}-"]  # answered 416: nothing left to fetch
    assert res.resumed_from == len(whole) and res.downloaded_bytes == 0
    assert sorted(p.name for p in to.iterdir()) == ["facades"]


def test_changed_file_restarts_instead_of_splicing(tmp_path: Path, mirror: Path) -> None:
    to = tmp_path / "datasets"
    with serve_folder(mirror) as srv:
        srv.cut_next_after = 500
        with pytest.raises(DataError, match="resume"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
        # The mirror now holds another archive: If-Range fails, the server sends it whole.
        make_archive(mirror / "facades.tar.gz", extra=[tarfile.TarInfo("facades/NEW")])
        res = download_dataset(DownloadOptions("facades", to, srv.base_url))
    assert res.resumed_from == 0 and (to / "facades" / "NEW").is_file()


def test_404_timeout_and_no_server(tmp_path: Path, mirror: Path) -> None:
    to = tmp_path / "datasets"
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match=r"maps\.tar\.gz: not found on the mirror \(HTTP 404\)"):
            download_dataset(DownloadOptions("maps", to, srv.base_url))
        srv.stall_seconds = 1.5
        with pytest.raises(DataError, match="timed out"):
            download_dataset(DownloadOptions("facades", to, srv.base_url, timeout=0.3))
    with pytest.raises(DataError, match="cannot reach the server"):
        download_dataset(DownloadOptions("facades", to, "http://127.0.0.1:9"))
    assert not (to / "facades").exists() and not (to / "maps").exists()


def test_corrupt_archive_is_refused_and_removed(tmp_path: Path, mirror: Path) -> None:
    data = bytearray((mirror / "facades.tar.gz").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)  # zeroed bytes in the deflate stream
    (mirror / "facades.tar.gz").write_bytes(bytes(data))
    to = tmp_path / "datasets"
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match="corrupt or truncated archive"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
    assert sorted(p.name for p in to.iterdir()) == []  # no partial, no temp folder, no dataset


def test_checksum_mismatch(tmp_path: Path, mirror: Path) -> None:
    (mirror / "facades.tar.gz.sha256").write_text("0" * 64 + "  facades.tar.gz\n")
    to = tmp_path / "datasets"
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match="sha256 mismatch"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
    assert not (to / "facades").exists() and not (to / "facades.tar.gz.part").exists()


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.png", r"'\.\.' in the path"),
        ("/tmp/p2p_abs_evil.png", "absolute path"),
    ],
)
def test_unsafe_members_refused_nothing_outside(
    tmp_path: Path, mirror: Path, member: str, why: str
) -> None:
    make_archive(mirror / "facades.tar.gz", extra=[tarfile.TarInfo(member)])
    to = tmp_path / "datasets"
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match=f"refused unsafe member.*{why}"):
            download_dataset(DownloadOptions("facades", to, srv.base_url))
    assert not Path("/tmp/p2p_abs_evil.png").exists()
    assert _files_outside(tmp_path, to, mirror) == []
    assert list(to.iterdir()) == []  # refused before anything was written


def test_link_members_are_refused_outright(tmp_path: Path) -> None:
    """pix2pix archives hold files and folders only: a link member of any kind, pointing
    inside or out, refuses the whole archive before anything is written (issue 20)."""
    sym = tarfile.TarInfo("facades/link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "../../outside"
    hard = tarfile.TarInfo("facades/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    inside = tarfile.TarInfo("facades/ok_link")
    inside.type, inside.linkname = tarfile.SYMTYPE, "train/1.png"
    dest = tmp_path / "dest"
    for info, why in ((sym, "a symbolic link"), (hard, "a hard link"), (inside, "symbolic")):
        dest.mkdir()
        arc = make_archive(tmp_path / "a.tar.gz", extra=[info])
        with pytest.raises(DataError, match=why):
            safe_extract(arc, dest)
        assert list(dest.iterdir()) == []
        shutil.rmtree(dest)


def test_file_mirror_and_bare_folder_layout(tmp_path: Path, mirror: Path) -> None:
    to = tmp_path / "datasets"
    res = download_dataset(DownloadOptions("facades", to, mirror.as_uri(), keep_archive=True))
    assert res.splits == SPLITS and (to / "facades.tar.gz").is_file()
    # A file:// partial resumes from its offset too.
    to2 = tmp_path / "again"
    to2.mkdir()
    whole = (mirror / "facades.tar.gz").read_bytes()
    (to2 / "facades.tar.gz.part").write_bytes(whole[:100])
    res2 = download_dataset(DownloadOptions("facades", to2, mirror.as_uri()))
    assert res2.resumed_from == 100 and res2.splits == SPLITS


def test_not_enough_disk_space_is_one_line(
    tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The free space of this disk cannot be changed from a test: report 1 MiB free.
    real = shutil.disk_usage

    def tiny(path):  # noqa: ANN001
        return real(path)._replace(free=1 << 20)

    monkeypatch.setattr(dl.shutil, "disk_usage", tiny)
    with serve_folder(mirror) as srv:
        with pytest.raises(DataError, match="not enough disk space"):
            download_dataset(DownloadOptions("facades", tmp_path / "d", srv.base_url))


def test_unknown_name_without_mirror_and_bad_scheme(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        download_dataset(DownloadOptions("imagenet", tmp_path))
    with pytest.raises(DataError, match="http://, https:// or file://"):
        download_dataset(DownloadOptions("facades", tmp_path, "ftp://example.org/x"))
