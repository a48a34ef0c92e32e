"""Whose files are in a run folder: ``p2p train --out DIR`` never overwrites a file it did not
write.

A run folder is marked by a hidden ``.p2p-run`` file written before anything else, so a
folder counts as the project's own when it holds that marker (or, for runs made before the
marker existed, ``checkpoints/latest``). Any other existing folder may hold the user's files:
training goes ahead there only when none of the names a run writes is taken, so a hand-written
``exp1/config.toml`` used as ``--config exp1/config.toml --out exp1`` is never replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from p2p_deploy.atomic import write_json
from p2p_deploy.errors import P2PError
from p2p_deploy.models.layout import RUN_MARKER, RUN_NAMES, is_run_folder


def foreign_names(run_dir: Path) -> list[str]:
    """Names a run would write that already exist in a folder the project did not make."""
    if not run_dir.is_dir() or is_run_folder(run_dir):
        return []
    return [n for n in RUN_NAMES if os.path.lexists(run_dir / n)]


def check_out_folder(run_dir: Path) -> None:
    """Refuse an ``--out`` whose files a new run would overwrite (see the module docstring).

    Raises:
        P2PError: ``run_dir`` is a file, or a folder not made by p2p train that holds a file
            or folder under one of :data:`RUN_NAMES`.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise P2PError(f"{run_dir}: --out exists and is not a folder.")
    taken = foreign_names(run_dir)
    if taken:
        raise P2PError(
            f"{run_dir}: holds {', '.join(taken)} but no training run, and p2p train would "
            f"overwrite {'it' if len(taken) == 1 else 'them'}; choose a new or empty --out "
            f"(e.g. {run_dir / 'run'})."
        )


def mark_run_folder(run_dir: Path) -> None:
    """Write the marker that makes ``run_dir`` the project's own (before any other file)."""
    marker = run_dir / RUN_MARKER
    if not marker.is_file():
        write_json(marker, {"format": "p2p-deploy/run", "pid": os.getpid()})
