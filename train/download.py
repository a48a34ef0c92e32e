"""Download and unpack a pix2pix dataset archive: resumable, checked, safely extracted.

``download_dataset(DownloadOptions(name="facades", to=Path("datasets")))`` fetches
``MIRROR/facades.tar.gz`` into ``datasets/facades.tar.gz.part`` (kept across interruptions and
resumed with an HTTP ``Range`` request), checks its size against the server's and its sha256
against ``MIRROR/facades.tar.gz.sha256`` when the mirror ships one, unpacks it into a hidden
temporary folder inside ``datasets/`` with every member checked, and renames the result to
``datasets/facades`` in one step: the folder is either absent or complete.

Mirrors are ``http(s)://`` or ``file://`` URLs of a folder holding the archives. Only the
standard library is used (urllib, tarfile, hashlib). Progress is reported through a callback so
that the CLI layer owns the progress bar.

Extraction is the project's own (:func:`safe_extract`), not tarfile's ``extractall``: the
pix2pix archives hold only files and folders, so any link, device or FIFO member refuses the
archive, and every member path goes through the one containment check
(:func:`p2p_deploy.paths.contained`) before anything is written; files are created with
``O_EXCL | O_NOFOLLOW``. tarfile's ``data`` filter is not relied on: it has had escapes fixed
as late as Python 3.9.23 / 3.10.18 / 3.11.13 / 3.12.11 / 3.13.4, and Python 3.10.0-3.10.11 /
3.11.0-3.11.3 (which ``requires-python`` allows) have no filters at all.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from p2p_deploy import __version__
from p2p_deploy.atomic import is_stale_temp, temp_prefix, write_json
from p2p_deploy.errors import DataError, UsageError
from p2p_deploy.media.files import IMAGE_EXTS
from p2p_deploy.paths import contained, escape_reason
from p2p_deploy.train.dataset_catalog import DEFAULT_MIRROR, CatalogEntry, find_entry

log = logging.getLogger(__name__)

CHUNK = 1 << 16
# Room left free beyond the archive itself when checking disk space up front.
SPACE_MARGIN = 16 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SHA256 = re.compile(r"\b([0-9a-fA-F]{64})\b")


class ArchiveError(DataError):
    """The archive is corrupt, truncated or holds an unsafe member (it is deleted)."""


ProgressFn = Callable[[int, "int | None"], None]
"""``progress(done_bytes, total_bytes_or_None)``; called at the start (with the resumed offset)
and after every chunk."""


@dataclass(frozen=True)
class DownloadOptions:
    """What ``p2p data download`` was asked to do.

    Attributes:
        name: dataset (archive stem). Without ``mirror`` it must be in the catalog.
        to: folder that receives ``NAME/`` (created when missing).
        mirror: base URL (http, https or file) of a folder holding ``NAME.tar.gz``.
        timeout: seconds a connection or a single read may stall before giving up.
        keep_archive: keep ``NAME.tar.gz`` beside the folder after unpacking.
    """

    name: str
    to: Path = Path("datasets")
    mirror: str | None = None
    timeout: float = 30.0
    keep_archive: bool = False


@dataclass(frozen=True)
class DownloadResult:
    """Where the dataset landed and how to train on it."""

    folder: Path
    splits: dict[str, int]  # split name -> number of image files
    downloaded_bytes: int
    resumed_from: int
    checksum: str | None  # "sha256 verified" or None when the mirror ships none
    already_present: bool
    entry: CatalogEntry | None

    def train_hint(self) -> str:
        """The `p2p train` command for this folder, with the usual direction."""
        direction = self.entry.usual_direction if self.entry else "AtoB"
        return f"p2p train --data {self.folder} --direction {direction}"


# ------------------------------------------------------------------------------------- sources


@dataclass
class _Response:
    """An opened download: the body stream from ``start``, and the full size when known."""

    stream: IO[bytes]
    start: int  # the first byte the stream delivers
    total: int | None  # the archive's full size
    validator: str | None  # ETag / Last-Modified, to tell a changed file on resume


def _url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + urllib.parse.quote(name)


def _local_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.request.url2pathname(parsed.path))


def _open_file(url: str, offset: int, validator: str | None) -> _Response:
    path = _local_path(url)
    if not path.is_file():
        raise DataError(f"{url}: not found on the mirror (no such file).")
    st = path.stat()
    now = f"{st.st_size}-{st.st_mtime_ns}"
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller's contextlib.closing
    # Resume only the same file (size and mtime unchanged since the partial was started).
    same = validator is None or validator == now
    start = offset if (0 < offset <= st.st_size and same) else 0
    f.seek(start)
    return _Response(f, start, st.st_size, now)


def _open_http(url: str, offset: int, validator: str | None, timeout: float) -> _Response:
    headers = {"User-Agent": f"p2p-deploy/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator  # a changed file comes back whole (200)
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) checked above
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is already complete (or too long)
            m = re.search(r"/(\d+)", exc.headers.get("Content-Range", "") or "")
            total = int(m.group(1)) if m else None
            exc.close()
            if total == offset:
                return _Response(_Empty(), offset, total, validator)
            return _open_http(url, 0, None, timeout)
        raise
    validator_now = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
    length = resp.headers.get("Content-Length")
    if resp.status == 206:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            resp.close()
            raise DataError(f"{url}: the server answered a resume request with a wrong range.")
        total = int(m.group(3)) if m.group(3) != "*" else None
        return _Response(resp, offset, total, validator_now)
    total = int(length) if length and length.isdigit() else None
    return _Response(resp, 0, total, validator_now)  # 200: from the start


class _Empty:
    """A body with nothing left to read (the file was already complete)."""

    def read(self, n: int = -1) -> bytes:  # noqa: ARG002
        return b""

    def close(self) -> None:
        pass


def _open(url: str, offset: int, validator: str | None, timeout: float) -> _Response:
    """Open ``url`` from byte ``offset`` (from 0 when the source cannot resume)."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme == "file":
        return _open_file(url, offset, validator)
    if scheme in ("http", "https"):
        return _open_http(url, offset, validator, timeout)
    raise DataError(f"{url}: the mirror must be an http://, https:// or file:// URL.")


@contextlib.contextmanager
def _network_errors(url: str, timeout: float) -> Iterator[None]:
    """Turn urllib and socket failures into one-line DataErrors naming ``url``."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise DataError(f"{url}: not found on the mirror (HTTP 404).") from None
        raise DataError(f"{url}: the server answered HTTP {exc.code} {exc.reason}.") from None
    except TimeoutError:
        raise DataError(
            f"{url}: timed out after {timeout:g} s without data; run the same command again to "
            "resume."
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise DataError(f"{url}: timed out connecting ({timeout:g} s).") from None
        raise DataError(f"{url}: cannot reach the server ({reason}); is the network up?") from None
    except (OSError, http.client.HTTPException) as exc:  # reset mid-transfer, ...
        if isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or exc.filename):
            raise DataError(f"{exc.filename or url}: {exc.strerror or exc}.") from None
        raise DataError(
            f"{url}: connection lost ({exc}); run the same command again to resume."
        ) from None


def fetch_checksum(base: str, name: str, timeout: float) -> str | None:
    """The hex sha256 from ``BASE/NAME.tar.gz.sha256`` (``sha256sum`` format or the bare
    digest), or None when the mirror ships no such file, or refuses it (any HTTP 4xx: the
    file is optional, so a 403 must not block the download).

    Raises:
        DataError: the file exists but holds no sha256, or the mirror cannot be reached.
    """
    url = _url(base, f"{name}.tar.gz.sha256")
    try:
        with _network_errors(url, timeout):
            try:
                resp = _open(url, 0, None, timeout)
            except urllib.error.HTTPError as exc:
                if not 400 <= exc.code < 500:
                    raise
                exc.close()
                log.debug("%s: HTTP %d; downloading without the mirror's checksum", url, exc.code)
                return None
            with contextlib.closing(resp.stream):
                text = resp.stream.read(4096).decode("utf-8", "replace")
    except DataError as exc:
        if "not found" in str(exc):  # a file:// mirror without it
            return None
        raise
    m = _SHA256.search(text)
    if m is None:
        raise DataError(f"{url}: holds no sha256 digest.")
    return m.group(1).lower()


# ------------------------------------------------------------------------------------ download


def _check_space(folder: Path, need: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need + SPACE_MARGIN:
        raise DataError(
            f"{folder}: not enough disk space ({_mib(free)} free, {_mib(need)} needed); "
            "free some space or use --to on another disk."
        )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _enospc(where: Path) -> DataError:
    return DataError(
        f"{where}: no space left on the device; free some space or use --to on another disk "
        "(the partial download is kept and resumes)."
    )


def download_file(
    url: str, part: Path, timeout: float, progress: ProgressFn | None = None
) -> tuple[int, int]:
    """Download ``url`` into ``part``, resuming from what ``part`` already holds.

    ``part.json`` beside it remembers the server's validator (ETag / Last-Modified) and size,
    so a changed file restarts from zero instead of splicing two versions.

    Returns:
        (bytes fetched now, the offset this run resumed from).

    Raises:
        DataError: network failures (one line), a size that does not match the server's, no
            disk space.
    """
    meta_path = part.with_name(part.name + ".json")
    offset = part.stat().st_size if part.is_file() else 0
    validator = None
    if offset and meta_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(meta_path.read_text())
            if meta.get("url") == url:
                validator = meta.get("validator")
            else:
                offset = 0
    with _network_errors(url, timeout):
        resp = _open(url, offset, validator, timeout)
        with contextlib.closing(resp.stream):
            if resp.start == 0 and offset:
                log.info("%s: the server cannot resume or the file changed; starting over", url)
            total = resp.total
            if total is not None:
                _check_space(part.parent, total - resp.start)
            write_json(meta_path, {"url": url, "validator": resp.validator, "total": total})
            done = resp.start
            if progress:
                progress(done, total)
            try:
                with open(part, "r+b" if resp.start else "wb") as f:
                    f.seek(resp.start)
                    f.truncate()
                    while chunk := resp.stream.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise _enospc(part.parent) from None
                if exc.filename:  # our own file, not the socket
                    raise DataError(f"{part}: cannot write ({exc.strerror or exc}).") from None
                raise
    if total is not None and done != total:
        raise DataError(
            f"{url}: the transfer stopped after {done} of {total} bytes; run the same command "
            "again to resume."
        )
    return done - resp.start, resp.start


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------- extraction


def _unsafe_reason(member: tarfile.TarInfo, root: Path) -> str | None:
    """Why ``member`` must not be extracted under ``root``, or None when it is safe: a
    pix2pix archive holds files and folders only, each inside ``root``."""
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        return f"a {kind} link (to {member.linkname}); dataset archives hold only files and folders"
    if not (member.isfile() or member.isdir()):
        return "a device, FIFO or other special file"
    name = member.name
    if name.startswith(("/", "\\")) or os.path.isabs(name) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in Path(name).parts:
        return "'..' in the path"
    if name.strip("/") in ("", "."):
        return None  # the archive's own root folder
    why = escape_reason(root, name)
    return f"path outside the target folder: {why}" if why else None


def _members(tar: tarfile.TarFile, archive: Path, root: Path) -> list[tarfile.TarInfo]:
    """Every member of ``tar``, each checked (the whole archive is refused on the first
    unsafe one, before anything is written)."""
    members = tar.getmembers()  # reads the whole stream: catches truncation up front
    for m in members:
        why = _unsafe_reason(m, root)
        if why:
            raise ArchiveError(f"{archive}: refused unsafe member {m.name!r} ({why}).")
    return members


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    """Write one checked member under ``root``: folders 0755, files 0644 (the archive's modes
    and owners are not kept), created with O_EXCL | O_NOFOLLOW (a link placed on the way, or a
    member given twice, fails instead of writing through it)."""
    name = member.name.strip("/")
    if name in ("", "."):
        return
    target = contained(root, name, "archive member", ArchiveError)
    if member.isdir():
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        if target.is_symlink() or not target.is_dir():
            raise ArchiveError(f"refused member {member.name!r}: not a folder on disk.")
        return
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(root):  # never: no link is ever made here
        raise ArchiveError(f"refused member {member.name!r}: its folder leaves the target.")
    src = tar.extractfile(member)
    if src is None:  # pragma: no cover - isfile() members always have data
        raise ArchiveError(f"refused member {member.name!r}: no data.")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise ArchiveError(f"refused member {member.name!r}: given twice in the archive.") from None
    with os.fdopen(fd, "wb") as out, contextlib.closing(src):
        shutil.copyfileobj(src, out, CHUNK)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract the gzip'd tar ``archive`` into the existing folder ``dest``.

    Every member is checked first (links and special files refused outright, absolute paths,
    ``..``, anything resolving outside ``dest``: the whole archive is refused before anything
    is written), the unpacked size is checked against the free space, then each member is
    written by :func:`_extract_member`. Works the same on every Python ``requires-python``
    allows (no ``filter=``, no ``tarfile.FilterError``: see the module docstring).

    Raises:
        DataError: a corrupt or truncated archive, an unsafe member, or no disk space.
    """
    root = dest.resolve()
    try:
        # tarfile stops at the end-of-archive blocks, before gzip's CRC: decompress the whole
        # stream once so that a flipped byte anywhere is caught before anything is written.
        with gzip.open(archive, "rb") as gz:
            while gz.read(1 << 20):
                pass
        with tarfile.open(archive, "r:gz") as tar:
            members = _members(tar, archive, root)
            _check_space(root, sum(m.size for m in members if m.isfile()))
            for m in members:
                _extract_member(tar, m, root)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise _enospc(dest) from None
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError) and exc.filename:
            raise DataError(f"{exc.filename}: cannot write ({exc.strerror or exc}).") from None
        raise ArchiveError(
            f"{archive}: corrupt or truncated archive ({exc}); it was removed, run the same "
            "command again to download it anew."
        ) from None


SPLIT_NAMES = ("train", "val", "test")


def _dataset_root(tmp: Path, name: str) -> Path:
    """The folder in an unpacked archive that holds the splits: ``tmp/NAME`` (the standard
    layout), the only folder in ``tmp`` unless that folder is itself a split (an archive whose
    top level is ``train/`` keeps it), or ``tmp`` itself."""
    if (tmp / name).is_dir():
        return tmp / name
    entries = [p for p in tmp.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in SPLIT_NAMES:
        return entries[0]
    return tmp


def count_splits(folder: Path) -> dict[str, int]:
    """Image files per split folder (``train``, ``val``, ``test``) that exists."""
    out = {}
    for split in ("train", "val", "test"):
        d = folder / split
        if d.is_dir():
            out[split] = sum(1 for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    return out


def download_dataset(opts: DownloadOptions, progress: ProgressFn | None = None) -> DownloadResult:
    """Fetch, check and unpack ``opts.name`` into ``opts.to / opts.name``.

    An existing non-empty ``opts.to / opts.name`` is left as it is (nothing is downloaded).
    ``--to`` is shared by datasets: each download holds a lock of its own in it
    (``.NAME.p2p-lock``), so two downloads of one dataset never write one partial file.
    ``--keep-archive`` never replaces a ``NAME.tar.gz`` already there (the project's rule,
    :mod:`p2p_deploy.outputs`). The archive's sha256 is checked against the catalogue's when
    one is recorded, else against the mirror's ``NAME.tar.gz.sha256`` when it ships one.

    Raises:
        DataError: unknown dataset, network failure, size or checksum mismatch, corrupt or
            unsafe archive, no disk space; always one sentence.
        UsageError: ``--to`` cannot be written, or ``NAME.tar.gz`` there is not ours.
    """
    from p2p_deploy.atomic import check_writable_dir
    from p2p_deploy.locking import FolderLock

    if opts.mirror is None:
        entry: CatalogEntry | None = find_entry(opts.name)
    else:
        if not _NAME.fullmatch(opts.name):
            raise DataError(f"{opts.name!r}: not a dataset name (letters, digits, _ . -).")
        entry = next((e for e in _catalog() if e.name == opts.name), None)
    base = opts.mirror or DEFAULT_MIRROR
    to = opts.to
    final = contained(to, opts.name, "dataset name")  # one folder inside --to, nothing else
    if final.is_dir() and any(final.iterdir()):
        return DownloadResult(final, count_splits(final), 0, 0, None, True, entry)
    if final.exists() and not final.is_dir():
        raise UsageError(f"{final}: exists and is not a folder; it is left as it is.")
    check_writable_dir(to, "--to")
    archive_name = f"{opts.name}.tar.gz"
    kept = to / archive_name
    if opts.keep_archive and os.path.lexists(kept):
        raise UsageError(
            f"{kept}: exists, and --keep-archive would replace it with this download; move it "
            "away, or drop --keep-archive."
        )
    try:
        to.mkdir(parents=True, exist_ok=True)  # stays: other datasets share it
    except OSError as exc:
        raise DataError(f"{to}: cannot create the folder ({exc.strerror or exc}).") from None
    with FolderLock(to, "p2p data download", "--to", name=f".{opts.name}.p2p-lock"):
        return _download_locked(opts, entry, base, final, progress)


def _download_locked(
    opts: DownloadOptions,
    entry: CatalogEntry | None,
    base: str,
    final: Path,
    progress: ProgressFn | None,
) -> DownloadResult:
    """:func:`download_dataset` once its lock is held."""
    to = opts.to
    if final.is_dir() and any(final.iterdir()):  # another download finished it meanwhile
        return DownloadResult(final, count_splits(final), 0, 0, None, True, entry)
    _clean_unpacking(to, opts.name)
    archive_name = f"{opts.name}.tar.gz"
    url = _url(base, archive_name)
    part = to / f"{archive_name}.part"
    known = entry.sha256 if entry is not None else None  # the archive's, on any mirror
    expected_sha = known or fetch_checksum(base, opts.name, opts.timeout)
    fetched, resumed_from = download_file(url, part, opts.timeout, progress)

    checksum = None
    if expected_sha is not None:
        got = sha256_of(part)
        if got != expected_sha:
            _remove(part, part.with_name(part.name + ".json"))
            says = "the catalogue's" if known else f"the mirror's {archive_name}.sha256"
            raise DataError(
                f"{url}: sha256 mismatch (got {got[:12]}..., {says} says "
                f"{expected_sha[:12]}...); the download was removed, run again to retry."
            )
        checksum = "sha256 verified" + (" (catalogue)" if known else "")

    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(f"{opts.name}.unpacking"), dir=to))
    try:
        try:
            safe_extract(part, tmp)
        except ArchiveError:
            _remove(part, part.with_name(part.name + ".json"))  # a new download is the fix
            raise
        root = _dataset_root(tmp, opts.name)
        with contextlib.suppress(FileNotFoundError):
            final.rmdir()  # an empty leftover folder would block the rename
        os.rename(root, final)  # same file system: the folder appears whole, in one step
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if opts.keep_archive:
        os.replace(part, to / archive_name)  # checked before: no file of the user's there
        _remove(part.with_name(part.name + ".json"))
    else:
        _remove(part, part.with_name(part.name + ".json"))
    splits = count_splits(final)
    if "train" not in splits:
        log.warning("%s: no train/ split in the archive; `p2p train` needs one", final)
    return DownloadResult(final, splits, fetched, resumed_from, checksum, False, entry)


def _clean_unpacking(to: Path, name: str) -> None:
    """Remove the unpacking folders of ``name`` that killed downloads left in ``to``: ours
    whose process is gone (host and pid in the name, as every temporary), and the untagged
    ones older versions made (the lock says no download of ``name`` runs now)."""
    for stale in to.glob(f".{name}.unpacking*"):
        if is_stale_temp(stale) or "p2ptmp-" not in stale.name:
            shutil.rmtree(stale, ignore_errors=True)


def _catalog() -> tuple[CatalogEntry, ...]:
    from p2p_deploy.train.dataset_catalog import CATALOG

    return CATALOG


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
