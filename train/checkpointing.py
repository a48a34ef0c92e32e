"""Training checkpoints: folders updated so that a kill at any moment leaves a usable one.

The layout (``RUN_DIR/checkpoints/{latest,best,epoch_NNNN}/``, each holding the generator's
weights, its card and ``state.pt``) is spelled out in :mod:`p2p_deploy.models.layout`.

A folder is written in full under a hidden temporary name (``.latest.tmp``), then swapped in:
``latest`` -> ``.latest.old``, ``.latest.tmp`` -> ``latest``, remove ``.latest.old``. A kill
between the two renames leaves only ``.latest.old``; :func:`recover` (run before every save and
on resume) puts it back. ``state.pt`` holds only tensors and plain containers, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from p2p_deploy.atomic import no_space
from p2p_deploy.errors import CheckpointError, first_line
from p2p_deploy.models.card import ModelCard
from p2p_deploy.models.generator import UNetGenerator
from p2p_deploy.models.layout import STATE_NAME, WEIGHTS_NAME, swap_names
from p2p_deploy.models.weights import save_generator

log = logging.getLogger(__name__)
STATE_FORMAT = "p2p-deploy/train-state"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(folder: Path) -> None:
    """Finish or undo an interrupted swap of ``folder`` (see the module docstring)."""
    tmp, old = swap_names(folder)
    if tmp.exists():  # never complete until renamed: discard
        shutil.rmtree(tmp)
    if old.exists():
        if folder.exists():  # the swap finished; only the clean-up was cut
            shutil.rmtree(old)
        else:
            os.rename(old, folder)
            log.warning("%s: restored the previous checkpoint after an interrupted save.", folder)


def save_checkpoint(
    folder: Path, generator: UNetGenerator, card: ModelCard, state: dict[str, Any] | None
) -> Path:
    """Write the generator's weights with ``card`` beside them, and ``state.pt``, into
    ``folder``, replacing it atomically (as a whole folder)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    tmp, old = swap_names(folder)
    tmp.mkdir()
    try:
        save_generator(generator, tmp / WEIGHTS_NAME, card)
        if state is not None:
            with open(tmp / STATE_NAME, "wb") as f:
                torch.save({"format": STATE_FORMAT, **state}, f)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
    except Exception as exc:
        # safetensors (SafetensorError) and torch.save (RuntimeError "unexpected pos") report
        # a full disk without an errno: name the OS's reason when that is what happened
        # (looked at before the partial files are removed, which frees the space again).
        # safetensors names the errno in its message, but its temporary file is gone already.
        full = not isinstance(exc, OSError) and (
            no_space(tmp / WEIGHTS_NAME) is not None or os.strerror(errno.ENOSPC) in str(exc)
        )
        gone = not tmp.is_dir()  # removed under us: not a full disk, say what happened
        shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoint stays as it was
        if gone and not isinstance(exc, OSError):
            raise OSError(errno.ENOENT, "the folder being written was removed", str(tmp)) from None
        if not full:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder)) from None
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)
    _fsync_dir(folder.parent)
    if old.exists():
        shutil.rmtree(old)
    return folder


def load_state(folder: Path) -> dict[str, Any]:
    """Read ``folder/state.pt`` with ``weights_only=True``.

    Raises:
        CheckpointError: missing, truncated/corrupt, or not a p2p-deploy training state.
    """
    path = Path(folder) / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad zip/pickle
        raise CheckpointError(
            f"{path}: corrupt or unreadable training state ({first_line(exc, 160, sentence=True)})."
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a p2p-deploy training state (foreign file).")
    return state
