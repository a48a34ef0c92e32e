"""Where a model's files lie: the run-folder layout, the card-naming rule and the model-file
kinds. Every other module asks here; no other module spells these names.

A training run folder (``p2p train --out RUN``)::

    RUN/.p2p-run                 marker: the folder is a run's own (written first)
    RUN/config.json, config.toml the resolved training config
    RUN/losses.csv, val.csv, loss_curve.png, samples/, tb/
    RUN/checkpoints/latest/      generator.safetensors + generator.json (card) + state.pt
    RUN/checkpoints/best/        the same, best val L1 so far
    RUN/checkpoints/epoch_NNNN/  the same, every --save-every epochs

A checkpoint folder is replaced as a whole through ``.NAME.tmp`` and ``.NAME.old`` (see
``train/checkpointing.py``); a ``.latest.old`` left by a kill between its two renames is complete.

Cards: checkpoint weights ``generator.safetensors`` -> ``generator.json`` (the name since the
first release); any other model file ``model.onnx`` -> ``model.onnx.json`` (the full name, so
``model.onnx`` and ``model.plan`` never share one).
"""

from __future__ import annotations

from pathlib import Path

RUN_MARKER = ".p2p-run"
CONFIG_JSON = "config.json"
CONFIG_TOML = "config.toml"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
BEST = "best"
WEIGHTS_NAME = "generator.safetensors"
CARD_NAME = "generator.json"
STATE_NAME = "state.pt"
CANONICAL_NAME = "latest_net_G.pth"  # the canonical PyTorch repo's generator file
# Every name p2p train writes directly inside --out (files and folders).
RUN_NAMES: tuple[str, ...] = (
    CONFIG_TOML,
    CONFIG_JSON,
    "losses.csv",
    "val.csv",
    "loss_curve.png",
    "samples",
    "tb",
    CHECKPOINTS,
)

# Model-file kinds by extension, and the backend that reads each kind natively.
CHECKPOINT_EXTS: tuple[str, ...] = (".safetensors", ".pth", ".pt")
ONNX_EXTS: tuple[str, ...] = (".onnx",)
IR_EXTS: tuple[str, ...] = (".xml",)  # OpenVINO IR (its weights in the .bin beside it)
ENGINE_EXTS: tuple[str, ...] = (".plan", ".engine")
KIND_BACKEND: dict[str, str] = {
    "checkpoint": "torch",
    "canonical": "torch",
    "onnx": "onnxruntime",
    "openvino": "openvino",
    "tensorrt": "tensorrt",
}


def checkpoint_dir(run_dir: str | Path, name: str = LATEST) -> Path:
    """``RUN/checkpoints/NAME`` (``latest``, ``best``, ``epoch_0003``)."""
    return Path(run_dir) / CHECKPOINTS / name


def epoch_name(epoch: int) -> str:
    """The folder name of the checkpoint saved after ``epoch`` (``epoch_0003``)."""
    return f"epoch_{epoch:04d}"


def swap_names(folder: str | Path) -> tuple[Path, Path]:
    """``(.NAME.tmp, .NAME.old)`` beside ``folder``: the temporary names of its atomic swap."""
    f = Path(folder)
    return f.parent / f".{f.name}.tmp", f.parent / f".{f.name}.old"


def interrupted_latest(run_dir: str | Path) -> Path:
    """``RUN/checkpoints/.latest.old``: the complete previous checkpoint a kill between the
    swap's two renames leaves (``p2p train --resume`` restores it)."""
    return swap_names(checkpoint_dir(run_dir))[1]


def weights_in(run_dir: str | Path) -> list[Path]:
    """Where a folder's generator may lie, in the order they are tried."""
    p = Path(run_dir)
    return [
        checkpoint_dir(p) / WEIGHTS_NAME,
        interrupted_latest(p) / WEIGHTS_NAME,
        p / WEIGHTS_NAME,
        p / CANONICAL_NAME,
    ]


def is_run_folder(run_dir: str | Path) -> bool:
    """True when ``run_dir`` was made by ``p2p train`` (its marker, or a checkpoint)."""
    p = Path(run_dir)
    return (
        (p / RUN_MARKER).is_file()
        or checkpoint_dir(p).exists()
        or interrupted_latest(p).exists()
    )


def card_path(model_file: str | Path) -> Path:
    """The card beside a model file: ``x.safetensors`` -> ``x.json``, ``model.onnx`` ->
    ``model.onnx.json`` (see the module docstring)."""
    p = Path(model_file)
    if p.suffix == ".safetensors":
        return p.with_suffix(".json")
    return p.with_name(p.name + ".json")


def ir_weights(xml: str | Path) -> Path:
    """The ``.bin`` that holds an OpenVINO IR's weights."""
    return Path(xml).with_suffix(".bin")


def file_kind(path: str | Path) -> str | None:
    """``checkpoint``, ``canonical``, ``onnx``, ``openvino`` or ``tensorrt`` by extension (a
    folder counts as a checkpoint); None for anything else."""
    p = Path(path)
    ext = p.suffix.lower()
    if p.is_dir() or ext == ".safetensors":
        return "checkpoint"
    if ext in (".pth", ".pt"):
        return "canonical"
    if ext in ONNX_EXTS:
        return "onnx"
    if ext in IR_EXTS:
        return "openvino"
    if ext in ENGINE_EXTS:
        return "tensorrt"
    return None
