"""What an INPUT path holds (one image, a folder of images and videos, one video) and where
each output goes. Pure path logic: nothing is read or written here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from p2p_deploy.errors import DataError

IMAGE_EXTS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv"})
# The container each codec is written into (OpenCV picks the muxer from the extension).
CODEC_CONTAINER: dict[str, str] = {
    "mp4v": ".mp4",
    "avc1": ".mp4",
    "h264": ".mp4",
    "hevc": ".mp4",
    "xvid": ".avi",
    "mjpg": ".avi",
}


# Written into every output folder `p2p run` makes: a later run over a tree that holds it (the
# default output of a single image, `in/x.png` -> `in/x_p2p/`, lies inside `in/`) skips it
# instead of reading the outputs back as inputs.
OUTPUT_MARKER = ".p2p-output"


@dataclass(frozen=True)
class Job:
    """One input file and the output file it becomes.

    kind: ``image`` or ``video``; ``rel`` is the path relative to the input root (for messages).
    A video whose frame size the run's codec cannot store goes to MJPG/.avi instead (decided
    by the writer when it sees the first frame, see :mod:`p2p_deploy.pipeline.stages`).
    """

    kind: str
    src: Path
    dst: Path
    rel: str


@dataclass
class InputPlan:
    """Every job found under an INPUT, plus what was left out and why.

    ignored: files that are neither image nor video; hidden: dot files and dot folders (not
    read, not descended into); own_outputs: folders holding :data:`OUTPUT_MARKER` (outputs of an
    earlier run, never read back as inputs); unreadable: entries that are no plain readable
    file or folder (a FIFO, a socket, a device file, a dangling link, a folder that cannot be
    listed or entered), each with the reason: they fail, one line each, and are never opened.
    """

    root: Path
    out_dir: Path
    jobs: list[Job] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)
    own_outputs: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (not recursive; by extension), sorted by name.

    Entries named like images that are no plain file (a FIFO, a socket, a dangling link) are
    listed too, so that reading them fails with the reason (never a silent skip, never an
    ``open()`` of a FIFO: see :mod:`p2p_deploy.media.inputs`).

    Raises:
        DataError: ``folder`` cannot be listed or entered.
    """
    from p2p_deploy.media.inputs import list_folder

    listing = list_folder(folder)
    if listing.problems and listing.problems[0][0] == Path(folder):
        raise DataError(f"{folder}: {listing.problems[0][1]}.")
    names = [*listing.files, *(p.name for p, _ in listing.problems)]
    return sorted(Path(folder) / n for n in names if Path(n).suffix.lower() in IMAGE_EXTS)


def media_kind(path: Path) -> str | None:
    """``image``, ``video`` or None, by extension (case-insensitive)."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def video_output_name(name: str, codec: str) -> str:
    """``clip.mov`` with ``mp4v`` -> ``clip.mp4``: the container that holds the codec."""
    ext = CODEC_CONTAINER.get(codec.lower())
    return str(Path(name).with_suffix(ext)) if ext else name


def default_out_dir(src: Path) -> Path:
    """``photos/`` -> ``photos_p2p/``; ``clip.mp4`` -> ``clip_p2p/`` (beside the input)."""
    src = src.resolve()
    return src.with_name((src.stem if src.is_file() else src.name) + "_p2p")


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def plan_inputs(
    src: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None, codec: str
) -> InputPlan:
    """Find the jobs under ``src`` and their outputs under ``out_dir``.

    A folder is walked recursively (sorted) and its tree is mirrored under ``out_dir``. Hidden
    files and folders (a leading dot) are not read and are listed in ``plan.hidden``; folders
    that an earlier run wrote (holding :data:`OUTPUT_MARKER`) in ``plan.own_outputs``. Videos
    whose names differ only by extension (``clip.avi``, ``clip.mp4``) keep the extension in
    the output name (``clip.avi.mp4``, ``clip.mp4.mp4``) so that both are kept. Refuses an
    ``out_dir`` that would overwrite or re-read inputs.

    The tree is read through the one input walk (:func:`p2p_deploy.media.inputs.walk_inputs`):
    links to folders are followed (each folder read once), and what cannot be read as a file
    or a folder goes to ``plan.unreadable`` with the reason, never opened, never skipped
    without a word.

    Raises:
        DataError: ``src`` missing, of an unknown type, or ``out_dir`` unsafe.
    """
    from p2p_deploy.media.inputs import check_input_file, walk_inputs

    src = Path(src)
    if not src.exists():
        if os.path.islink(src):
            raise DataError(f"{src}: a link to a missing file or folder ({os.readlink(src)}).")
        raise DataError(f"{src}: no such file or folder.")
    root = src.resolve()
    out = Path(out_dir).resolve() if out_dir is not None else default_out_dir(root)
    plan = InputPlan(root=root, out_dir=out)
    if not root.is_dir():
        check_input_file(src)  # a FIFO, socket or device given as INPUT: one line, not read
    if root.is_file():
        kind = media_kind(root)
        if kind is None:
            raise DataError(
                f"{src}: not an image ({', '.join(sorted(IMAGE_EXTS))}) "
                f"or a video ({', '.join(sorted(VIDEO_EXTS))})."
            )
        if out == root.parent:
            raise DataError(
                f"{out}: output folder is the input's own folder; choose another --out."
            )
        name = video_output_name(root.name, codec) if kind == "video" else root.name
        plan.jobs.append(Job(kind, root, out / name, root.name))
        return plan
    if out == root:
        raise DataError(
            f"{out}: output folder equals the input folder; inputs are never overwritten."
        )
    if _is_within(out, root):
        raise DataError(
            f"{out}: output folder is inside the input folder {root}; its outputs would be read "
            "back as inputs. Choose an --out outside it."
        )
    for listing in walk_inputs(root):
        here, dirnames, filenames = listing.folder, listing.dirs, listing.files
        for path, why in listing.problems:
            if path != here and path.name.startswith("."):
                plan.hidden.append(path)  # not read, whatever it is
            else:
                plan.unreadable.append((path, why))
        keep = []
        for d in dirnames:
            real = (here / d).resolve()
            if d.startswith("."):
                plan.hidden.append(here / d)
            elif _is_own_output(here, d, dirnames, filenames) or _is_within(real, out):
                plan.own_outputs.append(here / d)  # (a link into the output folder, too)
            else:
                keep.append(d)
        dirnames[:] = keep
        media: list[tuple[Path, str]] = []
        for name in filenames:
            path = here / name
            if name.startswith("."):
                plan.hidden.append(path)
                continue
            kind = media_kind(path)
            if kind is None:
                plan.ignored.append(path)
            else:
                media.append((path, kind))
        videos = [p for p, k in media if k == "video"]
        for path, kind in media:
            rel = _relative(path, root)
            rel_out = str(rel)
            if kind == "video":
                ext = CODEC_CONTAINER.get(codec.lower())
                twins = sum(v.stem == path.stem for v in videos)
                # Keep every video when stems clash: the source's extension joins the name.
                rel_out = f"{rel}{ext}" if twins > 1 and ext else video_output_name(rel_out, codec)
            plan.jobs.append(Job(kind, path, out / rel_out, str(rel)))
    return plan


def _relative(path: Path, root: Path) -> Path:
    """``path`` below ``root`` as the walk reached it (through links to folders too)."""
    return Path(os.path.relpath(path, root))


def _is_own_output(here: Path, name: str, dirnames: list[str], filenames: list[str]) -> bool:
    """Whether folder ``here/name`` holds outputs of an earlier run: it carries the marker, or
    (outputs of versions before the marker, or whose marker could not be written) it is the
    default output folder of a sibling: ``x_p2p`` beside ``x.png`` / ``x.mp4`` / folder ``x``.
    """
    try:
        if (here / name / OUTPUT_MARKER).is_file():
            return True
    except OSError:  # a folder that cannot be entered: the walk names it, it is not ours
        return False
    if not name.endswith("_p2p") or len(name) == 4:
        return False
    stem = name[: -len("_p2p")]
    return stem in dirnames or any(
        Path(f).stem == stem and media_kind(Path(f)) is not None for f in filenames
    )


def output_collisions(plan: InputPlan) -> dict[Job, Job]:
    """Jobs whose output path another, earlier job already takes (``a.avi`` and ``a.mov`` both
    become ``a.mp4``): later job -> the job that keeps the name."""
    seen: dict[Path, Job] = {}
    clashes: dict[Job, Job] = {}
    for job in plan.jobs:
        if job.dst in seen:
            clashes[job] = seen[job.dst]
        else:
            seen[job.dst] = job
    return clashes
