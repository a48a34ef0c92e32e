"""The end-of-run summary and the ``failures.json`` written beside the outputs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import write_json
from p2p_deploy.errors import named

FAILURES_NAME = "failures.json"
SUMMARY_FORMAT = "p2p-deploy/run-summary"  # what `--summary-json` files hold (one of ours)


@dataclass
class RunSummary:
    """Counts and timings of one run.

    done/skipped/failed count input files (an image or a whole video); ignored: files that are
    neither; hidden: dot files and dot folders (not read); own_outputs: output folders of
    earlier runs met in the input tree (not read); ``frames`` counts frames written;
    ``seconds`` is wall time from the first read to the last write; ``model_seconds`` the time
    the batcher spent inside the runner (submitting and waiting for results);
    ``stage_seconds``: busy seconds per stage summed over threads (decode, copy, infer,
    encode; see ``pipeline.stages.StageClock``); ``workers``: the threads that decode and encode;
    ``failures_error``: why ``failures.json`` could not be written (one line), or None;
    ``failures_file``: where it was written, or None (nothing failed, or the run wrote nothing
    and made no output folder for the list alone).
    """

    runner: str = ""
    done: int = 0
    skipped: int = 0
    ignored: int = 0
    hidden: int = 0
    own_outputs: int = 0
    own_output_dirs: list[str] = field(default_factory=list)  # their paths, named in line()
    frames: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    model_frames: int = 0
    workers: int = 1
    stage_seconds: dict[str, float] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    failures_error: str | None = None
    failures_file: str | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def fps(self) -> float:
        """End-to-end frames per second (frames written / wall time)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_ms_per_frame(self) -> float:
        return 1000.0 * self.model_seconds / self.model_frames if self.model_frames else 0.0

    @property
    def exit_code(self) -> int:
        """0: nothing failed; 2: some failed, others done or already there; 1: all failed."""
        if not self.failures:
            return 0
        return 2 if self.done + self.skipped > 0 else 1

    def bound_by(self) -> str | None:
        """The stage that bounds the run: the workers (decode + encode, whose busy seconds
        the ``workers`` threads share; named for the larger of the two), the runner
        (``infer``) or the batcher's host copies (``copy``). None before any work."""
        if not self.stage_seconds or self.seconds <= 0:
            return None
        decode = self.stage_seconds.get("decode", 0.0)
        encode = self.stage_seconds.get("encode", 0.0)
        share = {
            "decode" if decode >= encode else "encode": (decode + encode) / self.workers,
            "model": self.stage_seconds.get("infer", 0.0),
            "copies": self.stage_seconds.get("copy", 0.0),
        }
        return max(share, key=share.__getitem__)

    def line(self) -> str:
        """One line for the terminal."""
        return (
            f"done {self.done}, skipped {self.skipped} (already there), failed {self.failed}, "
            f"ignored {self.ignored} (not images/videos)"
            + (f", hidden {self.hidden} (dot files/folders, not read)" if self.hidden else "")
            + (
                f", {self.own_outputs} output folder(s) of earlier runs not read ("
                + named(self.own_output_dirs)
                + ")"
                if self.own_outputs
                else ""
            )
            + "; "
            + (
                f"{self.frames} frames in {self.seconds:.1f} s "
                f"= {self.fps:.1f} fps end to end, model {self.model_ms_per_frame:.1f} ms/frame"
                if self.frames
                else "no frames translated"  # every input skipped or failed: no speed to state
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "runner": self.runner,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "ignored": self.ignored,
            "hidden": self.hidden,
            "own_outputs": self.own_outputs,
            "own_output_dirs": self.own_output_dirs,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "model_ms_per_frame": round(self.model_ms_per_frame, 3),
            "workers": self.workers,
            "stage_seconds": self.stage_seconds,
            "bound_by": self.bound_by(),
            "failures": self.failures,
        }


def write_failures(out_dir: Path, summary: RunSummary) -> Path | None:
    """Write ``failures.json`` (this run's failures) or remove a stale one when none failed.
    A run that wrote nothing into a folder that does not exist makes none for the list alone
    (say ``p2p run in/broken.jpg``: no ``in/broken_p2p/`` beside the input; each failure has
    had its own line). Returns the path written, or None."""
    path = out_dir / FAILURES_NAME
    if not summary.failures:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    if not out_dir.is_dir():
        return None
    write_json(path, {"failed": summary.failed, "failures": summary.failures})
    return path
