"""Generator checkpoints: safetensors weights with the architecture in a JSON beside them.

Accepted everywhere a generator is read (export, run, bench):
    * a training run folder (its latest generator, ``checkpoints/latest/generator.safetensors``),
    * the project's ``*.safetensors`` with its ``*.json`` sidecar,
    * a canonical-repo ``latest_net_G.pth`` (plain state_dict), loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from p2p_deploy import __version__
from p2p_deploy.atomic import atomic_path, write_json
from p2p_deploy.canonical import convert_state_dict, infer_config, is_canonical
from p2p_deploy.config import GeneratorConfig
from p2p_deploy.errors import CheckpointError, first_line
from p2p_deploy.models.generator import UNetGenerator

FORMAT = "p2p-deploy/generator"
FORMAT_VERSION = 1
WEIGHTS_NAME = "generator.safetensors"
LATEST_DIR = Path("checkpoints") / "latest"


@dataclass
class LoadedGenerator:
    """A generator read from disk, with where it came from."""

    model: UNetGenerator
    config: GeneratorConfig
    path: Path  # the weights file actually read
    meta: dict[str, Any] = field(default_factory=dict)  # the sidecar JSON (empty for canonical)
    source: str = "p2p"  # "p2p" or "canonical"


def sidecar_path(weights: Path) -> Path:
    """``generator.safetensors`` -> ``generator.json``."""
    return weights.with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_checkpoint(path: str | Path) -> Path:
    """Turn a run folder or file path into the weights file to read.

    Raises:
        CheckpointError: the path does not exist or holds no generator.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file or folder.")
    if p.is_dir():
        # ``.latest.old`` is the previous checkpoint when a save was killed between its two
        # renames (train.checkpointing); it is complete, and `p2p train --resume` restores it.
        interrupted = p / LATEST_DIR.parent / f".{LATEST_DIR.name}.old" / WEIGHTS_NAME
        candidates = (p / LATEST_DIR / WEIGHTS_NAME, interrupted, p / WEIGHTS_NAME)
        for cand in (*candidates, p / "latest_net_G.pth"):
            if cand.is_file():
                return cand
        raise CheckpointError(
            f"{p}: folder holds no generator (looked for {LATEST_DIR / WEIGHTS_NAME}, "
            f"{WEIGHTS_NAME}, latest_net_G.pth)."
        )
    return p


def save_generator(
    model: UNetGenerator, weights: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Atomically write ``weights`` (safetensors) and its JSON sidecar (architecture + ``meta``).

    Only parameters and buffers are stored (running stats included); tensors are copied to CPU.
    """
    from safetensors.torch import save_file

    weights = Path(weights)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": model.cfg.to_dict(),
        "p2p_deploy_version": __version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(meta or {}),
    }
    write_json(sidecar_path(weights), sidecar)
    return weights


def _load_safetensors(weights: Path) -> LoadedGenerator:
    side = sidecar_path(weights)
    if not side.is_file():
        raise CheckpointError(f"{weights}: no architecture sidecar {side.name} beside it.")
    try:
        meta = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{side}: unreadable sidecar ({exc}).") from None
    if meta.get("format") != FORMAT or "generator" not in meta:
        raise CheckpointError(f"{side}: not a p2p-deploy generator sidecar.")
    cfg = GeneratorConfig.from_dict(meta["generator"])
    return LoadedGenerator(_build(cfg, read_weights(weights), weights), cfg, weights, meta, "p2p")


def read_weights(weights: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``generator.safetensors``, as a state dict on the CPU (no model built).

    Raises:
        CheckpointError: missing, truncated or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(weights)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no generator weights there.")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{weights}: corrupt or truncated safetensors file ({first_line(exc)})."
        ) from None


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6: a zip archive
PICKLE_PROTOCOLS = range(2, 6)  # the legacy format: a pickle stream, b"\x80" + protocol


def _check_pth_container(weights: Path) -> None:
    """Say what a ``.pth`` is when it is no torch file at all, or a cut one, before torch's
    own messages ("[Errno 22] Invalid argument", "pickled Python objects" for random bytes).

    Raises:
        CheckpointError: empty, neither a zip archive nor a pickle, or a zip cut short.
    """
    import zipfile

    try:
        with open(weights, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{weights}: cannot read file ({exc.strerror or exc}).") from None
    size = weights.stat().st_size
    if size == 0:
        raise CheckpointError(f"{weights}: empty file, not a torch checkpoint.")
    if head == ZIP_MAGIC:
        if not zipfile.is_zipfile(weights):  # the central directory sits at the very end
            raise CheckpointError(
                f"{weights}: truncated torch checkpoint (a zip archive whose end is missing; "
                f"{size:,} bytes); copy or download it again."
            )
        return
    if not (head[:1] == b"\x80" and len(head) > 1 and head[1] in PICKLE_PROTOCOLS):
        raise CheckpointError(
            f"{weights}: not a torch checkpoint (neither the zip archive torch.save writes nor a "
            f"legacy pickle; it starts with bytes {head.hex(' ')})."
        )


def _load_pth(weights: Path) -> LoadedGenerator:
    _check_pth_container(weights)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad pickle/zip
        if "Weights only load failed" in str(exc):
            # torch's own text here tells the user to retry with weights_only=False (running
            # the file's code), in terminal escape codes: say what the file is instead.
            raise CheckpointError(
                f"{weights}: holds pickled Python objects, not a plain state_dict of tensors "
                "(a whole model or a training checkpoint?); only state_dicts are loaded, with "
                "weights_only=True, since unpickling can run arbitrary code."
            ) from None
        raise CheckpointError(
            f"{weights}: corrupt or truncated torch checkpoint ({first_line(exc, sentence=True)})."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{weights}: not a plain state_dict of tensors.")
    # DataParallel checkpoints prefix every key with "module.".
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not is_canonical(state):
        raise CheckpointError(f"{weights}: not a pix2pix U-Net generator state_dict.")
    cfg = infer_config(state, name=str(weights))
    converted = convert_state_dict(state, cfg)
    return LoadedGenerator(_build(cfg, converted, weights), cfg, weights, {}, "canonical")


def _build(cfg: GeneratorConfig, state: dict[str, torch.Tensor], weights: Path) -> UNetGenerator:
    model = UNetGenerator(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # torch's first line only says "Error(s) in loading state_dict": the next two name keys.
        lines = str(exc).splitlines()[1:3]
        detail = "; ".join(line.strip() for line in lines) or first_line(exc)
        raise CheckpointError(
            f"{weights}: weights do not fit the U-Net in its sidecar ({detail[:300]})."
        ) from None
    return model


def load_generator(path: str | Path) -> LoadedGenerator:
    """Load a generator (on CPU, train mode as built) from any accepted checkpoint path.

    Raises:
        CheckpointError: missing, truncated, foreign, or shapes that fit no U-Net.
    """
    weights = resolve_checkpoint(path)
    if weights.suffix == ".safetensors":
        return _load_safetensors(weights)
    if weights.suffix in (".pth", ".pt"):
        return _load_pth(weights)
    raise CheckpointError(f"{weights}: unknown checkpoint type (expected .safetensors or .pth).")
