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


@dataclass(frozen=True)
class Job:
    """One input file and the output file it becomes.

    kind: ``image`` or ``video``; ``rel`` is the path relative to the input root (for messages).
    """

    kind: str
    src: Path
    dst: Path
    rel: str


@dataclass
class InputPlan:
    """Every job found under an INPUT, plus what was left out and why."""

    root: Path
    out_dir: Path
    jobs: list[Job] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # files that are neither image nor video


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (not recursive; by extension), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


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

    A folder is walked recursively (sorted, hidden files and folders skipped) and its tree is
    mirrored under ``out_dir``. Refuses an ``out_dir`` that would overwrite or re-read inputs.

    Raises:
        DataError: ``src`` missing, of an unknown type, or ``out_dir`` unsafe.
    """
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder.")
    root = src.resolve()
    out = Path(out_dir).resolve() if out_dir is not None else default_out_dir(root)
    plan = InputPlan(root=root, out_dir=out)
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
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith("."):
                continue
            kind = media_kind(path)
            if kind is None:
                plan.ignored.append(path)
                continue
            rel = path.relative_to(root)
            rel_out = video_output_name(str(rel), codec) if kind == "video" else str(rel)
            plan.jobs.append(Job(kind, path, out / rel_out, str(rel)))
    return plan


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
