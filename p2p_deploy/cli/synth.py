"""`p2p synth`: write the procedural facades dataset (and an optional label-map video)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from p2p_deploy.outputs import OutputSpec

HELP = (
    "Write synthetic facades-like pairs in the aligned A|B format.\n\n"
    "OUT/train, OUT/val, OUT/test hold NNNNN.png images of SIZE x 2*SIZE: the rendered photo on "
    "the left (A) and the CMP-palette label map on the right (B), so label->photo is "
    "--direction BtoA, as with the real facades dataset. Deterministic by --seed; existing "
    "files are kept. With --video N, also OUT/labels.mp4: N label-map frames (mp4v, 10 fps) "
    "with a slow pan and zoom. With --labels N, also OUT/labels/NNNNN.png: "
    "the label maps of test pairs 1..N alone (their B halves, whether or not --test writes "
    "those pairs), ready for `p2p run`."
)


# 4096 x 8192 x 3 bytes = 100 MB per image; larger sizes only exhaust memory.
MAX_SIZE = 4096
_SYNTH_FILE = re.compile(r"\d{5}\.png")


def _is_synth_folder(folder: Path) -> bool:
    """A folder `p2p synth` wrote before it marked its folders: its split and label folders
    hold nothing but NNNNN.png images."""
    names = [n for n in SYNTH_NAMES if n != "labels.mp4" and (folder / n).is_dir()]
    try:
        return bool(names) and all(
            _SYNTH_FILE.fullmatch(p.name) for n in names for p in (folder / n).iterdir()
        )
    except OSError:
        return False


SYNTH_NAMES = ("train", "val", "test", "labels", "labels.mp4")
# `p2p synth OUT` follows the project's rule (p2p_deploy.outputs): another seed or size, or
# files of the user under these names, are never mixed into.
SYNTH_OUTPUT = OutputSpec(
    command="p2p synth",
    flag="OUT",
    what="synthetic dataset",
    marker=".p2p-synth",
    names=SYNTH_NAMES,
    legacy=_is_synth_folder,
    example="synthetic",
)


def register(app: typer.Typer) -> None:
    from p2p_deploy.cli.usage import PlainUsageCommand
    from p2p_deploy.options import checked

    @app.command("synth", help=HELP, cls=PlainUsageCommand)
    def synth_cmd(
        out: Path = typer.Argument(..., help="Output folder."),
        train: int = typer.Option(
            400, "--train", callback=checked("--train", min=0), help="Training pairs."
        ),
        val: int = typer.Option(
            20, "--val", callback=checked("--val", min=0), help="Validation pairs."
        ),
        test: int = typer.Option(
            20, "--test", callback=checked("--test", min=0), help="Test pairs."
        ),
        size: int = typer.Option(
            256,
            "--size",
            callback=checked("--size", min=16, max=MAX_SIZE),
            help="Height (and width of each half) in pixels.",
        ),
        seed: int = typer.Option(
            0, "--seed", callback=checked("--seed", min=0), help="Dataset seed."
        ),
        video: int = typer.Option(
            0,
            "--video",
            callback=checked("--video", min=0),
            help="Also write OUT/labels.mp4 with N frames.",
        ),
        labels: int = typer.Option(
            0,
            "--labels",
            callback=checked("--labels", min=0),
            help="Also write OUT/labels/ with N label maps alone.",
        ),
    ) -> None:
        import logging
        import time

        from p2p_deploy.locking import FolderLock
        from p2p_deploy.outputs import check_output_folder, claim_output_folder

        log = logging.getLogger("p2p_deploy.cli.synth")
        identity = {"seed": seed, "size": size}
        check_output_folder(out, SYNTH_OUTPUT, identity=identity)  # before any image is drawn
        t0 = time.perf_counter()
        with FolderLock(out, "p2p synth", "OUT"):
            check_output_folder(out, SYNTH_OUTPUT, identity=identity)
            claim_output_folder(out, SYNTH_OUTPUT, identity)
            msg = _write(out, train, val, test, size, seed, video, labels)
        log.info("wrote %s (new images: %s) in %.1f s", out, msg, time.perf_counter() - t0)


def _write(  # noqa: PLR0913 - the command's own counts
    out: Path, train: int, val: int, test: int, size: int, seed: int, video: int, labels: int
) -> str:
    """Write the splits, label maps and video; a one-line summary of what was written."""
    from p2p_deploy.errors import DataError
    from p2p_deploy.train.synthetic import (
        write_aligned_dataset,
        write_label_maps,
        write_label_video,
    )

    try:
        splits = {"train": train, "val": val, "test": test}
        written = write_aligned_dataset(out, splits, size, seed)
        msg = ", ".join(f"{k} {v}" for k, v in written.items())
        if labels:
            n = write_label_maps(out / "labels", labels, size, seed)
            msg += f", label maps {out / 'labels'} ({n} new)"
        if video:
            write_label_video(out / "labels.mp4", video, size, seed)
            msg += f", video {out / 'labels.mp4'} ({video} frames)"
    except OSError as exc:  # a read-only or full disk, ...
        where = exc.filename or out
        raise DataError(f"{where}: cannot write ({exc.strerror or exc}).") from None
    return msg
