"""The one reader of models on disk: :func:`open_model`.

Whatever path a user gives (a run folder, ``generator.safetensors``, a canonical
``latest_net_G.pth``, ``model.onnx``, an OpenVINO ``model.xml``, a TensorRT ``model.plan``),
``open_model`` says what it is, reads its card, and reads the model file **once**: runners,
export, bench and eval take the :class:`ModelFile` and never parse files themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2p_deploy.errors import CheckpointError, P2PError
from p2p_deploy.models.card import (
    CardError,
    ExportCard,
    ModelCard,
    default_test_norm,
    read_card,
)
from p2p_deploy.models.layout import (
    CANONICAL_NAME,
    CHECKPOINT_EXTS,
    KIND_BACKEND,
    WEIGHTS_NAME,
    card_path,
    checkpoint_dir,
    file_kind,
    ir_weights,
    weights_in,
)

if TYPE_CHECKING:
    import torch

    from p2p_deploy.models.generator import UNetGenerator
    from p2p_deploy.models.sanity import OnnxFacts

KNOWN = (
    "expected .plan/.engine for TensorRT, .onnx for ONNX Runtime, .xml for OpenVINO, or a run "
    "folder / .safetensors / .pth for PyTorch"
)


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A model read from disk, with its card.

    Attributes:
        path: the path as given (a run folder, or the file itself).
        file: the file actually read (the weights of a run folder, the ``.xml`` of an IR).
        kind: ``checkpoint`` (the project's safetensors), ``canonical`` (a canonical-repo
            ``.pth``), ``onnx``, ``openvino`` (IR) or ``tensorrt`` (plan).
        card: a :class:`ModelCard` for checkpoints (made from the tensors for a canonical
            ``.pth``), an :class:`ExportCard` for exported models; None only for an ONNX or IR
            written by another tool (the graph is then all there is).
        data: the bytes of an exported ``file``, read once (the ``.xml`` of an IR); None for
            checkpoints, whose bytes are hashed and parsed into ``state``, then dropped.
        weights_data: the ``.bin`` of an OpenVINO IR (None otherwise).
        state: a checkpoint's tensors (CPU), parsed from ``data``; None for exports.
        onnx: an ONNX file's I/O and precision, read once from ``data`` when it was checked
            (:func:`p2p_deploy.models.sanity.inspect_onnx`); None otherwise.
    """

    path: Path
    file: Path
    kind: str
    card: ModelCard | None
    data: bytes | None = field(repr=False)
    weights_data: bytes | None = field(default=None, repr=False)
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    onnx: OnnxFacts | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        """The backend that reads this kind natively (``auto`` may still put an fp32 ONNX on
        OpenVINO on a CPU; see ``runners.factory``)."""
        return KIND_BACKEND[self.kind]

    @property
    def is_checkpoint(self) -> bool:
        return self.kind in ("checkpoint", "canonical")

    @property
    def export_card(self) -> ExportCard | None:
        return self.card if isinstance(self.card, ExportCard) else None

    @property
    def precision(self) -> str | None:
        """``fp32``/``fp16``/``int8`` of an export (its card, else its graph); ``fp32`` for a
        checkpoint (as stored); None when unknown."""
        if self.is_checkpoint:
            return "fp32"
        if self.export_card is not None:
            return self.export_card.precision
        if self.onnx is not None:  # read once, with the graph's checks (models.sanity)
            return self.onnx.precision
        return None

    @property
    def sha256(self) -> str | None:
        """sha256 of the checkpoint's weights file (None for exports: see their card's
        ``checkpoint_sha256`` for their source)."""
        return self.card.checkpoint_sha256 if self.is_checkpoint and self.card else None

    def generator(self) -> UNetGenerator:
        """A :class:`UNetGenerator` (CPU, train mode as built) with these weights.

        Raises:
            P2PError: not a checkpoint.
        """
        from p2p_deploy.models.weights import build_generator

        if self.state is None or self.card is None:
            raise P2PError(f"{self.path}: an exported {self.kind} model, not generator weights.")
        return build_generator(self.card.generator, self.state, self.file)


def resolve_model_path(path: str | Path) -> tuple[Path, str]:
    """(the file to read, its kind) for any path a user may give.

    Raises:
        P2PError (CheckpointError for folders and weights): missing, or of no known kind.
    """
    p = Path(path)
    if not p.exists():
        raise (CheckpointError if p.suffix in CHECKPOINT_EXTS or not p.suffix else P2PError)(
            f"{p}: no such model file or folder."
        )
    if p.is_dir():
        for cand in weights_in(p):
            if cand.is_file():
                return cand, file_kind(cand) or "checkpoint"
        raise CheckpointError(
            f"{p}: folder holds no generator (looked for "
            f"{checkpoint_dir('.') / WEIGHTS_NAME}, {WEIGHTS_NAME}, {CANONICAL_NAME})."
        )
    kind = file_kind(p)
    if kind is None:
        raise P2PError(f"{p}: unknown model type ({KNOWN}).")
    if not p.is_file():
        raise P2PError(f"{p}: not a regular file.")
    return p, kind


def as_model(model: ModelFile | str | Path) -> ModelFile:
    """``model`` itself when already opened, else :func:`open_model` of the path."""
    return model if isinstance(model, ModelFile) else open_model(model)


def open_model(path: str | Path) -> ModelFile:
    """Read the model at ``path`` (any kind; see the module docstring) with its card.

    Checkpoints: the weights are read once, hashed (``card.checkpoint_sha256``) and parsed;
    their card must be there (a canonical ``.pth`` gets one made from its tensors).
    Exports: the file is read once; its card is read when present. An ONNX model is checked
    here, before any work, by the one model sanity check (:mod:`p2p_deploy.models.sanity`:
    one float (N, 3, S, S) input and a matching output, no NaN/inf weights).

    Raises:
        P2PError: one sentence naming the file: missing, unreadable, corrupt, a foreign or
            broken card, weights holding NaN/inf, I/O that is not a generator's, or no known
            model type.
    """
    from p2p_deploy.models.weights import read_bytes, sha256_hex

    given = Path(path)
    file, kind = resolve_model_path(given)
    if kind in ("checkpoint", "canonical"):
        from p2p_deploy.deps import require_train

        # A deploy install has no torch: one sentence naming the extra, before any read.
        needs = ("torch", "safetensors") if kind == "checkpoint" else ("torch",)
        require_train(f"{file}: a PyTorch checkpoint", needs)
    if kind == "checkpoint":
        # The card before the weights: without it the tensors cannot be understood.
        card = _checkpoint_card(file)
        data = read_bytes(file)
        state = _parse_checkpoint(data, file)
        card = _with_sha(card, sha256_hex(data))
        return ModelFile(given, file, kind, card, None, state=state)
    if kind == "canonical":
        from p2p_deploy.models.weights import check_finite, parse_canonical

        data = read_bytes(file)
        cfg, state = parse_canonical(data, file)
        check_finite(state, file)
        card = ModelCard(
            generator=cfg,
            test_norm=default_test_norm(cfg.norm),
            source="canonical",
            checkpoint_sha256=sha256_hex(data),
        )
        return ModelFile(given, file, kind, card, None, state=state)
    card = read_card(file)
    if card is not None and not isinstance(card, ExportCard):
        raise CardError(f"{card_path(file)}: a checkpoint's card beside a {kind} model.")
    data = read_bytes(file, P2PError)
    weights_data = None
    facts = None
    if kind == "openvino":
        weights_data = read_bytes(ir_weights(file), P2PError)
    elif kind == "onnx":
        from p2p_deploy.models.sanity import inspect_onnx

        facts = inspect_onnx(data, file, card.image_size if card is not None else None)
    return ModelFile(given, file, kind, card, data, weights_data, onnx=facts)


def _checkpoint_card(weights: Path) -> ModelCard:
    card = read_card(weights)
    if card is None:
        raise CheckpointError(f"{weights}: no card {card_path(weights).name} beside it.")
    if isinstance(card, ExportCard):
        raise CheckpointError(
            f"{card_path(weights)}: an exported model's card, not a checkpoint's."
        )
    return card


def _parse_checkpoint(data: bytes, weights: Path) -> dict[str, Any]:
    from p2p_deploy.models.weights import check_finite, parse_safetensors

    state = parse_safetensors(data, weights)
    check_finite(state, weights)
    return state


def _with_sha(card: ModelCard, sha: str) -> ModelCard:
    import dataclasses

    return dataclasses.replace(card, checkpoint_sha256=sha)
