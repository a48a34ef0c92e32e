"""A Triton Inference Server model repository for an export.

Layout::

    DIR/<model_name>/config.pbtxt
    DIR/<model_name>/1/model.plan      (platform tensorrt_plan)      or
    DIR/<model_name>/1/model.onnx      (platform onnxruntime_onnx)

``max_batch_size`` is the top of the batch profile; dims leave out the batch axis (Triton adds
it); dynamic batching gathers single requests into batches up to that size.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from p2p_deploy.atomic import atomic_path, write_text
from p2p_deploy.errors import P2PError
from p2p_deploy.models.card import ExportCard, read_export_card

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
PLATFORMS = {
    "tensorrt": ("tensorrt_plan", "model.plan"),
    "onnx": ("onnxruntime_onnx", "model.onnx"),
}
DEFAULT_MODEL_NAME = "p2p_generator"


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

    ``max_batch_size`` defaults to the plan's profile max (required for ONNX models).

    Raises:
        P2PError: bad model name, no card, no batch size, or an unwritable folder.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model_name):
        raise P2PError(f"Triton model name {model_name!r}: use letters, digits, '_', '-', '.'.")
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
    model_dir = Path(repo_dir) / model_name
    try:
        version_dir = model_dir / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(version_dir / filename) as tmp:
            shutil.copyfile(model_path, tmp)
        config = model_dir / "config.pbtxt"
        write_text(config, config_pbtxt(card, model_name, max_batch_size, preferred_batch_sizes))
    except OSError as exc:
        raise P2PError(
            f"{repo_dir}: cannot write the Triton model repository ({exc.strerror or exc})."
        ) from None
    return config
