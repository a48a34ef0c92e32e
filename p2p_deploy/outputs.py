"""May I write here: the one rule for every command that writes where a user points it.

A command never overwrites a file it did not write. Each command that writes into a folder a
user names (``p2p train --out``, ``p2p eval --out``, ``p2p bench --out``, ``p2p synth OUT``,
``p2p export --triton``, ...) describes what it writes there with an :class:`OutputSpec`: the
names it writes directly inside the folder and the hidden marker that makes a folder its own.
Before any work, :func:`check_output_folder` applies the rule:

* a folder that does not exist yet, or one that holds none of those names, may be written;
* a folder holding the command's marker (or, for folders made before markers existed, files the
  command recognises as its own) holds the project's own files: they may be replaced, unless
  the marker records another *identity* (another model evaluated, another seed synthesised):
  then only with ``--overwrite`` (where the command has that flag);
* any other folder holding one of the names is refused in one line naming them, since
  writing would overwrite the user's files (``--overwrite``, where a command has it, is the
  user's explicit consent).

:func:`claim_output_folder` writes the marker right before the command's first file, so a
command that fails earlier leaves no marker behind. A single file a user names (``p2p run
--summary-json FILE``) follows the same rule through :func:`check_output_file`: an existing
file is replaced only when the project wrote it.

Every refusal is a :class:`~p2p_deploy.errors.UsageError` (exit 64): the command line must
change (another folder, or ``--overwrite``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.errors import UsageError, named

MARKER_FORMAT = "p2p-deploy/output"


@dataclass(frozen=True)
class OutputSpec:
    """What one command writes into a folder a user names.

    Attributes:
        command: ``p2p eval`` (for messages).
        flag: the option naming the folder (``--out``, ``OUT``, ``--triton``).
        what: what the folder holds when it is the command's own (``eval report``).
        marker: the hidden file that makes a folder the command's own (``.p2p-eval``).
        names: every name the command writes directly inside the folder.
        legacy: recognises a folder the command made before it wrote markers (optional).
        overwrite_flag: the flag that allows replacing another identity's or the user's
            files, when the command has one.
        example: a subfolder name suggested in the refusal (``e.g. exp1/run``).
    """

    command: str
    flag: str
    what: str
    marker: str
    names: tuple[str, ...]
    legacy: Callable[[Path], bool] | None = None
    overwrite_flag: str | None = None
    example: str = "new"


def read_marker(folder: str | os.PathLike[str], marker: str) -> dict[str, Any] | None:
    """The JSON object in ``folder/marker``; ``{}`` for a marker that is not such an object
    (an older or hand-made one still marks the folder); None when there is none."""
    path = Path(folder) / marker
    try:
        if not path.is_file():
            return None
    except OSError:  # a folder that cannot be entered holds no marker we can read
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_own_folder(folder: str | os.PathLike[str], spec: OutputSpec) -> bool:
    """True when ``folder`` holds ``spec``'s marker, or is recognised by ``spec.legacy``."""
    folder = Path(folder)
    if read_marker(folder, spec.marker) is not None:
        return True
    return spec.legacy is not None and folder.is_dir() and spec.legacy(folder)


def check_output_folder(
    folder: str | os.PathLike[str],
    spec: OutputSpec,
    *,
    identity: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Before any work: may ``spec.command`` write into ``folder``? (See the module docstring.)

    ``identity``: what this invocation makes (compared with the one the marker records; None:
    the command keeps no identity). Creates nothing.

    Returns:
        the names already there that the command will replace (its own files).

    Raises:
        UsageError: ``folder`` is a file, or holds files the command did not write, or the
            output of another identity, and ``overwrite`` is not given.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{spec.flag} {folder}: exists and is not a folder.")
    if not folder.is_dir():
        return []
    taken = [n for n in spec.names if os.path.lexists(folder / n)]
    if not taken:
        return []
    marker = read_marker(folder, spec.marker)
    own = marker is not None or (spec.legacy is not None and spec.legacy(folder))
    consent = f"give {spec.overwrite_flag} to replace them, or " if spec.overwrite_flag else ""
    if not own:
        if overwrite and spec.overwrite_flag:
            return taken
        it = "it" if len(taken) == 1 else "them"
        raise UsageError(
            f"{folder}: holds {named(taken, 6)} but no {spec.what}, and {spec.command} would "
            f"overwrite {it}; {consent}choose a new or empty {spec.flag} "
            f"(e.g. {folder / spec.example})."
        )
    recorded = (marker or {}).get("identity")
    if identity is not None and recorded is not None and recorded != identity:
        if overwrite and spec.overwrite_flag:
            return taken
        differs = sorted(k for k in {*identity, *recorded} if identity.get(k) != recorded.get(k))
        was = ", ".join(f"{k} {recorded.get(k)}" for k in differs)
        raise UsageError(
            f"{folder}: holds the {spec.what} of another {spec.command} ({was}); "
            f"{consent}choose another {spec.flag}."
        )
    return taken


def claim_output_folder(
    folder: str | os.PathLike[str],
    spec: OutputSpec,
    identity: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Create ``folder`` and write ``spec``'s marker (with ``identity`` and ``extra`` facts):
    call right before the command's first file there, so a command that failed earlier
    leaves no marker."""
    from p2p_deploy.atomic import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"format": MARKER_FORMAT, "command": spec.command}
    if identity is not None:
        record["identity"] = identity
    record.update(extra)
    old = read_marker(folder, spec.marker)
    if old != record:
        write_json(folder / spec.marker, record)


def check_output_file(
    path: str | os.PathLike[str],
    flag: str,
    is_own: Callable[[Path], bool],
    *,
    what: str = "file",
    overwrite: bool = False,
) -> None:
    """Before any work: an existing ``path`` is replaced only when ``is_own(path)`` says the
    project wrote it (or with ``overwrite``, the user's consent).

    Raises:
        UsageError: ``path`` is a folder, or a file the project did not write.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name.")
    if not os.path.lexists(path) or overwrite:
        return
    if path.is_symlink() or not path.is_file() or not is_own(path):
        raise UsageError(
            f"{flag} {path}: exists and is not a {what} this command wrote; it is never "
            "overwritten (give another name, or remove it first)."
        )


def is_own_json(path: Path, fmt: str, keys: tuple[str, ...] = ()) -> bool:
    """True when ``path`` holds a JSON object with ``"format": fmt`` (or, written before the
    format tag, every one of ``keys``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    return data.get("format") == fmt or (bool(keys) and all(k in data for k in keys))
