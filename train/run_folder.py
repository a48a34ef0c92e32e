"""Whose files are in a run folder: ``p2p train --out DIR`` never overwrites a file it did not
write (the project-wide rule of :mod:`p2p_deploy.outputs`, applied to run folders).

A run folder is marked by a hidden ``.p2p-run`` file written before anything else, so a
folder counts as the project's own when it holds that marker (or, for runs made before the
marker existed, ``checkpoints/latest``). Any other existing folder may hold the user's files:
training goes ahead there only when none of the names a run writes is taken, so a hand-written
``exp1/config.toml`` used as ``--config exp1/config.toml --out exp1`` is never replaced.
"""

from __future__ import annotations

from pathlib import Path

from p2p_deploy.models.layout import RUN_MARKER, RUN_NAMES, is_run_folder
from p2p_deploy.outputs import OutputSpec, check_output_folder, claim_output_folder

TRAIN_OUTPUT = OutputSpec(
    command="p2p train",
    flag="--out",
    what="training run",
    marker=RUN_MARKER,
    names=RUN_NAMES,
    legacy=is_run_folder,
    example="run",
)


def check_out_folder(run_dir: Path) -> None:
    """Refuse an ``--out`` whose files a new run would overwrite (see the module docstring).

    Raises:
        UsageError: ``run_dir`` is a file, or a folder not made by p2p train that holds a file
            or folder under one of :data:`RUN_NAMES`.
    """
    check_output_folder(run_dir, TRAIN_OUTPUT)


def mark_run_folder(run_dir: Path) -> None:
    """Write the marker that makes ``run_dir`` the project's own (before any other file)."""
    claim_output_folder(run_dir, TRAIN_OUTPUT)
