"""`p2p synth`: write the procedural facades dataset (and an optional label-map video)."""

from __future__ import annotations

from pathlib import Path

import typer

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


def register(app: typer.Typer) -> None:
    from p2p_deploy.cli.usage import PlainUsageCommand

    @app.command("synth", help=HELP, cls=PlainUsageCommand)
    def synth_cmd(
        out: Path = typer.Argument(..., help="Output folder."),
        train: int = typer.Option(400, "--train", min=0, help="Training pairs."),
        val: int = typer.Option(20, "--val", min=0, help="Validation pairs."),
        test: int = typer.Option(20, "--test", min=0, help="Test pairs."),
        size: int = typer.Option(
            256, "--size", min=16, help="Height (and width of each half) in pixels."
        ),
        seed: int = typer.Option(0, "--seed", help="Dataset seed."),
        video: int = typer.Option(
            0, "--video", min=0, help="Also write OUT/labels.mp4 with N frames."
        ),
        labels: int = typer.Option(
            0, "--labels", min=0, help="Also write OUT/labels/ with N label maps alone."
        ),
    ) -> None:
        import logging
        import time

        from p2p_deploy.errors import DataError
        from p2p_deploy.train.synthetic import (
            write_aligned_dataset,
            write_label_maps,
            write_label_video,
        )

        log = logging.getLogger("p2p_deploy.cli.synth")
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: exists and is not a folder.")
        t0 = time.perf_counter()
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
        except OSError as exc:  # OUT under a file, a read-only or full disk, ...
            where = exc.filename or out
            raise DataError(f"{where}: cannot write ({exc.strerror or exc}).") from None
        log.info("wrote %s (new images: %s) in %.1f s", out, msg, time.perf_counter() - t0)
