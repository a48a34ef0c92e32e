"""Generator weights on disk: the project's safetensors (with its card beside it) and the
canonical repo's ``latest_net_G.pth``.

Reading works on the bytes of a file read once (:func:`p2p_deploy.models.opening.open_model`
hashes and parses the same bytes). Every error is one sentence naming the file.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_deploy.atomic import atomic_path
from p2p_deploy.errors import CheckpointError, P2PError, first_line
from p2p_deploy.models.card import CHECKPOINT_FORMAT, ModelCard
from p2p_deploy.models.config import GeneratorConfig

if TYPE_CHECKING:
    import torch

    from p2p_deploy.models.generator import UNetGenerator

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6: a zip archive
PICKLE_PROTOCOLS = range(2, 6)  # the legacy format: a pickle stream, b"\x80" + protocol


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_bytes(path: Path, error: type[P2PError] = CheckpointError) -> bytes:
    """The whole file (any model file: weights, ONNX, IR, plan), or one sentence saying why not.

    Raises:
        error: missing or unreadable (:class:`CheckpointError` unless told otherwise).
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file.") from None
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror or exc}).") from None


def parse_safetensors(data: bytes, where: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``generator.safetensors`` given as bytes, on the CPU.

    Raises:
        CheckpointError: truncated or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{where}: corrupt or truncated safetensors file ({first_line(exc)})."
        ) from None


def read_weights(weights: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``generator.safetensors`` as a CPU state dict (no model built).

    Raises:
        CheckpointError: missing, truncated or not a safetensors file.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no generator weights there.")
    return parse_safetensors(read_bytes(weights), weights)


def save_generator(model: UNetGenerator, weights: str | Path, card: ModelCard) -> Path:
    """Atomically write ``weights`` (safetensors) and its card beside it.

    Only parameters and buffers are stored (running stats included); tensors are copied to CPU.
    ``card`` must describe ``model`` (its generator config is checked against the model's).
    """
    from safetensors.torch import save_file

    if card.generator != model.cfg:
        raise ValueError(f"card describes {card.generator}, the model is {model.cfg}")
    weights = Path(weights)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": CHECKPOINT_FORMAT})
    card.stamped().write(weights)
    return weights


def check_finite(state: dict[str, torch.Tensor], where: Path) -> None:
    """Refuse weights holding NaN or inf (they would write black images with exit 0).

    Raises:
        CheckpointError: naming the first tensor that holds one.
    """
    import torch

    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"{where}: weights hold NaN or inf ({bad:,} value(s) in {name}); "
                "the checkpoint is broken (a diverged training run?)."
            )


def _check_pth_container(data: bytes, weights: Path) -> None:
    """Say what a ``.pth`` is when it is no torch file at all, or a cut one, before torch's
    own messages ("[Errno 22] Invalid argument", "pickled Python objects" for random bytes).

    Raises:
        CheckpointError: empty, neither a zip archive nor a pickle, or a zip cut short.
    """
    head = data[:4]
    if not data:
        raise CheckpointError(f"{weights}: empty file, not a torch checkpoint.")
    if head == ZIP_MAGIC:
        if not zipfile.is_zipfile(io.BytesIO(data)):  # the central directory sits at the end
            raise CheckpointError(
                f"{weights}: truncated torch checkpoint (a zip archive whose end is missing; "
                f"{len(data):,} bytes); copy or download it again."
            )
        return
    if not (head[:1] == b"\x80" and len(head) > 1 and head[1] in PICKLE_PROTOCOLS):
        raise CheckpointError(
            f"{weights}: not a torch checkpoint (neither the zip archive torch.save writes nor a "
            f"legacy pickle; it starts with bytes {head.hex(' ')})."
        )


def parse_canonical(data: bytes, weights: Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """A canonical-repo generator ``.pth`` given as bytes -> (its architecture, the state dict
    renamed onto :class:`UNetGenerator`). Loaded with ``weights_only=True``: no code runs.

    Raises:
        CheckpointError: not a torch file, pickled objects, or not a pix2pix U-Net.
    """
    import torch

    from p2p_deploy.models.canonical import convert_state_dict, infer_config, is_canonical

    _check_pth_container(data, weights)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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
    return cfg, convert_state_dict(state, cfg)


def build_generator(
    cfg: GeneratorConfig, state: dict[str, torch.Tensor], where: Path
) -> UNetGenerator:
    """A :class:`UNetGenerator` (CPU, train mode as built) holding ``state``.

    Raises:
        CheckpointError: the tensors do not fit the architecture.
    """
    from p2p_deploy.models.generator import UNetGenerator

    model = UNetGenerator(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # torch's first line only says "Error(s) in loading state_dict": the next two name keys.
        lines = str(exc).splitlines()[1:3]
        detail = "; ".join(line.strip() for line in lines) or first_line(exc)
        raise CheckpointError(
            f"{where}: weights do not fit the U-Net in its card ({detail[:300]})."
        ) from None
    return model
