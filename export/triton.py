"""A Triton Inference Server model repository for an export.

Layout::

    DIR/<model_name>/config.pbtxt
    DIR/<model_name>/1/model.plan      (platform tensorrt_plan)      or
    DIR/<model_name>/1/model.onnx      (platform onnxruntime_onnx)

``max_batch_size`` is the top of the batch profile; dims leave out the batch axis (Triton adds
it); dynamic batching gathers single requests into batches up to that size.

``DIR/<model_name>/`` follows the project's "may I write here" rule (:mod:`p2p_deploy.outputs`):
a hidden ``.p2p-triton`` marker records the checkpoint it was exported from and the sha256 of
the ``config.pbtxt`` written; :func:`check_triton_target` refuses, before any work and unless
``--overwrite``, a model folder that p2p export did not write, one of another checkpoint, or
one whose ``config.pbtxt`` was edited by hand since. The name is one folder inside ``DIR``
(:func:`p2p_deploy.paths.contained`).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from p2p_deploy.atomic import atomic_path, write_text
from p2p_deploy.errors import P2PError, UsageError
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.options import plain_name
from p2p_deploy.outputs import (
    OutputSpec,
    check_output_folder,
    claim_output_folder,
    is_own_folder,
    read_marker,
)
from p2p_deploy.paths import contained

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
PLATFORMS = {
    "tensorrt": ("tensorrt_plan", "model.plan"),
    "onnx": ("onnxruntime_onnx", "model.onnx"),
}
DEFAULT_MODEL_NAME = "p2p_generator"
CONFIG_NAME = "config.pbtxt"
VERSION = "1"
TRITON_OUTPUT = OutputSpec(
    command="p2p export",
    flag="--triton",
    what="Triton model written by p2p export",
    marker=".p2p-triton",
    names=(CONFIG_NAME, VERSION),
    overwrite_flag="--overwrite",
    example="another_name",
)


def model_folder(repo_dir: str | Path, model_name: str) -> Path:
    """``repo_dir/model_name``, the name checked to be one plain folder name inside it.

    Raises:
        UsageError: a name with a separator, ``..``, or other characters.
    """
    why = plain_name(model_name)
    if why:
        raise UsageError(f"Triton model name {model_name!r}: {why}.")
    return contained(repo_dir, model_name, "--triton-name")


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def check_triton_target(
    repo_dir: str | Path,
    model_name: str,
    checkpoint_sha256: str | None,
    overwrite: bool = False,
) -> None:
    """Before any work: may this export write ``repo_dir/model_name``?

    Refused unless ``overwrite``: a model folder p2p export did not write, one exported from
    another checkpoint (``checkpoint_sha256`` None: not known yet, not compared), or one whose
    ``config.pbtxt`` changed since p2p export wrote it (a hand edit would be lost).

    Raises:
        UsageError: one line naming the folder and what would be lost.
    """
    folder = model_folder(repo_dir, model_name)
    identity = None if checkpoint_sha256 is None else {"checkpoint_sha256": checkpoint_sha256}
    taken = check_output_folder(folder, TRITON_OUTPUT, identity=identity, overwrite=overwrite)
    if overwrite or CONFIG_NAME not in taken:
        return
    marker = read_marker(folder, TRITON_OUTPUT.marker) or {}
    written = marker.get("config_sha256")
    if written is not None and _sha256(folder / CONFIG_NAME) != written:
        raise UsageError(
            f"{folder / CONFIG_NAME}: edited since p2p export wrote it, and this export would "
            "replace it; give --overwrite to replace it, or choose another --triton-name."
        )


def config_pbtxt(
    card: ExportCard,
    model_name: str,
    max_batch_size: int,
    preferred_batch_sizes: list[int] | None = None,
    queue_delay_us: int = 100,
) -> str:
    """The ``config.pbtxt`` text for a model described by ``card``.

    Args:
        card: the exported model's card (kind, names, shapes, I/O dtype).
        model_name: the folder / model name.
        max_batch_size: largest batch Triton may form (the engine profile's max for plans).
        preferred_batch_sizes: batch sizes the dynamic batcher aims for.
        queue_delay_us: how long the batcher may wait to fill a batch.
    """
    platform, filename = PLATFORMS[card.kind]
    dtype = TRITON_DTYPES[card.io_dtype]
    in_dims = ", ".join(str(d) for d in card.input_shape[1:])
    out_dims = ", ".join(str(d) for d in card.output_shape[1:])
    preferred = sorted({b for b in (preferred_batch_sizes or []) if 1 <= b <= max_batch_size})
    pref_line = (
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n" if preferred else ""
    )
    gpu = "KIND_GPU" if card.kind == "tensorrt" else "KIND_AUTO"
    return (
        f'name: "{model_name}"\n'
        f'platform: "{platform}"\n'
        f'default_model_filename: "{filename}"\n'
        f"max_batch_size: {max_batch_size}\n"
        f'input [\n  {{\n    name: "{card.input_name}"\n    data_type: {dtype}\n'
        f"    dims: [ {in_dims} ]\n  }}\n]\n"
        f'output [\n  {{\n    name: "{card.output_name}"\n    data_type: {dtype}\n'
        f"    dims: [ {out_dims} ]\n  }}\n]\n"
        f"dynamic_batching {{\n{pref_line}  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
        f"instance_group [\n  {{\n    count: 1\n    kind: {gpu}\n  }}\n]\n"
    )


def write_triton_repository(
    model_path: str | Path,
    repo_dir: str | Path,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    max_batch_size: int | None = None,
    preferred_batch_sizes: list[int] | None = None,
) -> Path:
    """Copy ``model_path`` (a ``.plan`` or ``.onnx`` with its card) into a Triton model
    repository at ``repo_dir`` and write its ``config.pbtxt``; returns the config's path.

    ``max_batch_size`` defaults to the plan's profile max (required for ONNX models). The
    caller checks the folder first (:func:`check_triton_target`); the folder is marked as this
    export's (checkpoint, config sha256), and a model file of the other platform left by an
    earlier export of ours in ``1/`` is removed.

    Raises:
        P2PError: bad model name, no card, no batch size, or an unwritable folder.
    """
    model_dir = model_folder(repo_dir, model_name)
    model_path = Path(model_path)
    card = read_export_card(model_path)
    if card.kind not in PLATFORMS:
        raise P2PError(f"{model_path}: unknown model kind {card.kind!r} for Triton.")
    if max_batch_size is None:
        if not card.batch_profile:
            raise P2PError(f"{model_path}: no batch profile; give the Triton max batch size.")
        max_batch_size = int(card.batch_profile[2])
    if max_batch_size < 1:
        raise P2PError(f"Triton max batch size must be >= 1, got {max_batch_size}.")
    _, filename = PLATFORMS[card.kind]
    identity = {"checkpoint_sha256": card.checkpoint_sha256}
    try:
        own = is_own_folder(model_dir, TRITON_OUTPUT)
        claim_output_folder(model_dir, TRITON_OUTPUT, identity)
        version_dir = model_dir / VERSION
        version_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(version_dir / filename) as tmp:
            shutil.copyfile(model_path, tmp)
        if own:  # an earlier export of ours for the other platform: Triton must not find it
            for _, other in PLATFORMS.values():
                if other != filename:
                    (version_dir / other).unlink(missing_ok=True)
        config = model_dir / CONFIG_NAME
        text = config_pbtxt(card, model_name, max_batch_size, preferred_batch_sizes)
        write_text(config, text)
        claim_output_folder(
            model_dir,
            TRITON_OUTPUT,
            identity,
            config_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
    except OSError as exc:
        raise P2PError(
            f"{repo_dir}: cannot write the Triton model repository ({exc.strerror or exc})."
        ) from None
    return config
