"""The training configuration: one frozen dataclass resolved from a TOML file and CLI flags.

Precedence: dataclass defaults < ``--config FILE.toml`` < flags given on the command line; on
``--resume`` the run's saved ``RUN_DIR/config.json`` sits between the defaults and the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from p2p_deploy.devices import parse_device
from p2p_deploy.errors import P2PError, UsageError
from p2p_deploy.models.card import DIRECTIONS
from p2p_deploy.models.config import DiscriminatorConfig, GeneratorConfig
from p2p_deploy.options import option, validate

GAN_MODES = ("vanilla", "lsgan")


@dataclass(frozen=True)
class TrainConfig:
    """Every option of ``p2p train`` (names = CLI flags with ``-`` -> ``_``).

    Data: ``data`` is ``synthetic`` (procedural facades generated on the fly) or a folder in the
    aligned A|B format (``train/``, ``val/`` splits) or with paired ``A/`` and ``B/`` subfolders.
    """

    data: str = option("synthetic", help="'synthetic' or a data folder.")
    out: str = option("runs/p2p", help="Run folder.", short="-o")
    direction: str = option("BtoA", help="AtoB or BtoA (label->photo on facades).")
    image_size: int = option(256, max=4096, help="Crop size; downsamplings follow (256->8).")
    ngf: int = option(64, min=1, max=1024, help="Generator width.")
    ndf: int = option(64, max=1024, help="Discriminator width.")
    norm: str = option("batch", help="batch or instance.")
    dropout: bool = option(True, help="Dropout in the decoder.")
    n_layers_d: int = option(3, min=1, max=8, help="PatchGAN stride-2 layers (3 = 70x70).")
    gan_mode: str = option("vanilla", help="vanilla (BCE) or lsgan (MSE).")
    lambda_l1: float = option(100.0, help="Weight of the L1 term.")
    lr: float = option(2e-4, help="Adam learning rate.")
    beta1: float = option(0.5, help="Adam beta1.")
    epochs: int = option(100, help="Epochs at the initial rate.")
    epochs_decay: int = option(100, help="Epochs of linear decay to 0.")
    batch_size: int = option(1, max=4096, help="Batch size per process.")
    max_steps: int = option(0, help="Stop after N optimiser steps (0 = no limit).")
    seed: int = option(0, min=0, help="Seed of init, data order, jitter, dropout.")
    jitter: bool = option(True, help="Resize to 286/256 x size and random-crop.")
    flip: bool = option(True, help="Random horizontal mirror.")
    device: str = option("auto", help="auto, cpu or cuda.")
    amp: bool = option(False, help="Mixed precision (CUDA only).")
    num_workers: int = option(0, max=256, help="Data-loader worker processes.")
    log_every: int = option(50, min=0, help="Log losses every N steps.")
    sample_every: int = option(500, min=0, help="Sample grid PNG every N steps.")
    save_every: int = option(5, min=0, help="checkpoints/epoch_NNNN every N epochs.")
    checkpoint_every: int = option(
        0, help="Also update checkpoints/latest every N steps (0 = epoch ends only)."
    )
    synthetic_train: int = option(400, help="Synthetic training pairs.")
    synthetic_val: int = option(20, help="Synthetic val pairs.")
    max_val: int = option(100, help="Score at most N val pairs per epoch.")

    def __post_init__(self) -> None:
        checks = [
            (
                self.direction in DIRECTIONS,
                f"--direction must be AtoB or BtoA, got {self.direction!r}",
            ),
            (
                self.gan_mode in GAN_MODES,
                f"--gan-mode must be vanilla or lsgan, got {self.gan_mode!r}",
            ),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            # GeneratorConfig would say "needs at least 5 downsamplings": name the flag instead.
            (self.image_size >= 32, f"--image-size must be at least 32, got {self.image_size}"),
            (
                self.epochs >= 0 and self.epochs_decay >= 0,
                "--epochs and --epochs-decay must be >= 0",
            ),
            (self.epochs + self.epochs_decay >= 1, "--epochs + --epochs-decay must be at least 1"),
            (self.max_steps >= 0, "--max-steps must be >= 0"),
            # inf/NaN would diverge at once and cannot be written into config.toml either.
            (math.isfinite(self.lr), f"--lr must be finite, got {self.lr}"),
            (math.isfinite(self.lambda_l1), f"--lambda-l1 must be finite, got {self.lambda_l1}"),
            (math.isfinite(self.beta1), f"--beta1 must be finite, got {self.beta1}"),
            (self.lr > 0, "--lr must be positive"),
            (self.lambda_l1 >= 0, "--lambda-l1 must be >= 0 (a negative weight rewards L1 error)"),
            (0 <= self.beta1 < 1, "--beta1 must be in [0, 1)"),
            (self.num_workers >= 0, "--num-workers must be >= 0"),
            (self.ndf >= 1, f"--ndf must be at least 1, got {self.ndf}"),
            # 0 would score no pair at all (the mean of nothing), not "all of them".
            (self.max_val >= 1, f"--max-val must be at least 1, got {self.max_val}"),
            (self.checkpoint_every >= 0, "--checkpoint-every must be >= 0"),
            (
                self.synthetic_train >= 1 and self.synthetic_val >= 1,
                "synthetic counts must be >= 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UsageError(msg + ".")
        validate(self)  # the rules declared on the fields (ranges, finite numbers)
        try:
            # The one device grammar; no cuda:N here: under torchrun the local rank picks the GPU.
            parse_device(self.device, allow_index=False)
            self.generator_config()  # validates image size / ngf / norm now, not mid-run
            self.discriminator_config()
        except P2PError as exc:
            raise UsageError(str(exc)) from None

    @property
    def load_size(self) -> int:
        """The paper's resize-before-crop size, scaled: 286 at 256 px, 143 at 128 px."""
        return int(round(self.image_size * 286 / 256))

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    def generator_config(self) -> GeneratorConfig:
        # A 6-channel RGB pair is only the discriminator's business; the U-Net maps RGB -> RGB.
        return GeneratorConfig(
            ngf=self.ngf, norm=self.norm, image_size=self.image_size, dropout=self.dropout
        )

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(ndf=self.ndf, n_layers=self.n_layers_d, norm=self.norm)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check_types(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Reject unknown keys, one option given under two spellings (``image-size`` and
    ``image_size``) and values of the wrong type, naming ``source``."""
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in FIELDS:
            raise UsageError(f"{source}: unknown option {raw_key!r}.")
        if key in spelled:
            raise UsageError(
                f"{source}: option {key.replace('_', '-')!r} is given twice "
                f"({spelled[key]!r} and {raw_key!r}); keep one."
            )
        spelled[key] = raw_key
        want = type(FIELDS[key].default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise UsageError(
                f"{source}: option {raw_key!r} must be {want.__name__}, got {value!r}."
            )
        out[key] = value
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file: top-level keys, or under a ``[train]`` table."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise P2PError(f"{p}: config file not found.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise P2PError(f"{p}: unreadable config file ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{p}: not valid TOML ({exc}).") from None
    if isinstance(data.get("train"), dict):
        # Keys beside the [train] table would otherwise be dropped without a word.
        outside = [k for k in data if k != "train"]
        if outside:
            raise UsageError(
                f"{p}: option(s) {', '.join(map(repr, outside))} outside the [train] table; "
                "put every option under [train] or none."
            )
        data = data["train"]
    return _check_types(data, str(p))


def resolve_config(
    config_file: str | Path | None,
    overrides: dict[str, Any],
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then ``base``, then the TOML file, then the flags that were given
    (``overrides``).

    ``overrides`` holds only options the user actually passed; ``None`` values are ignored.
    ``base`` is a resumed run's saved config: the file and flags given now change it.
    """
    values: dict[str, Any] = dict(base or {})
    if config_file is not None:
        values.update(load_toml(config_file))
    values.update(_check_types({k: v for k, v in overrides.items() if v is not None}, "flags"))
    try:
        return TrainConfig(**values)
    except TypeError as exc:  # pragma: no cover - _check_types catches unknown keys first
        raise P2PError(f"bad training options: {exc}.") from None


def read_run_config(path: str | Path) -> TrainConfig:
    """Read the ``config.json`` a run folder holds."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise P2PError(f"{p}: unreadable run config ({exc}).") from None
    return TrainConfig(**_check_types(data, str(p)))


def config_to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML text (``[train]`` table), loadable with ``--config``."""
    lines = ["# resolved p2p train config", "[train]"]
    for k, v in cfg.to_dict().items():
        lines.append(
            f"{k} = {json.dumps(v)}" if not isinstance(v, bool) else f"{k} = {str(v).lower()}"
        )
    return "\n".join(lines) + "\n"
