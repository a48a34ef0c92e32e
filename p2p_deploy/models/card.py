"""Model cards: what a model is, in a JSON file beside it (as diffusers keeps ``config.json``
beside its weights).

* :class:`ModelCard`, beside checkpoint weights (``generator.json``): the architecture, the
  translation direction, the test-time normalisation, where and how it was trained, and the
  sha256 of the weights it describes.
* :class:`ExportCard`, beside an exported model (``model.onnx.json``, ``model_fp16.plan.json``):
  the same card, carried through export unchanged (so the direction and everything else survive
  it), plus precision, I/O, opset and the engine facts a runtime checks before it loads.

Cards are typed: a hand-edited or corrupt card (binary, a list, a string where a number belongs)
is refused in one sentence naming the file and the field. Cards of format version 1 (written
before cards had a direction and training section of their own) still load.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from p2p_deploy import __version__
from p2p_deploy.atomic import write_json
from p2p_deploy.errors import P2PError
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.layout import card_path
from p2p_deploy.models.spatial import SizeRange, SpatialProfile

DIRECTIONS: tuple[str, ...] = ("AtoB", "BtoA")
DEFAULT_DIRECTION = "BtoA"  # label -> photo on facades (photo left = A)
TEST_NORMS: tuple[str, ...] = ("stats", "running")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
SOURCES: tuple[str, ...] = ("p2p", "canonical")
EXPORT_KINDS: tuple[str, ...] = ("onnx", "openvino", "tensorrt")
CHECKPOINT_FORMAT = "p2p-deploy/generator"
EXPORT_FORMAT = "p2p-deploy/model"
CARD_VERSION = 2


class CardError(P2PError):
    """A card that is missing, unreadable, foreign or holds a wrong value (one line)."""


def default_test_norm(norm: str) -> str:
    """``stats`` for batch-norm generators (the paper's choice); instance norm needs no choice."""
    return "stats" if norm == "batch" else "running"


# ------------------------------------------------------------------------------ typed fields

_T = TypeVar("_T")


class _Fields:
    """Typed reads of one card's JSON object; every error names the file and the field."""

    def __init__(self, d: Any, where: Path | str) -> None:
        if not isinstance(d, dict):
            raise CardError(f"{where}: not a card (a JSON {type(d).__name__}, not an object).")
        self.d = d
        self.where = where

    def bad(self, key: str, value: Any, want: str) -> CardError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return CardError(f"{self.where}: field {key!r} must be {want}, got {shown}.")

    def get(self, key: str, kind: type[_T] | tuple[type, ...], want: str, default: Any = None):
        v = self.d.get(key, default)
        if v is None:
            return None
        # bool is an int in Python: never accept it for a number, nor a number for a bool.
        if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.bad(key, v, want)
        if not isinstance(v, kind):
            raise self.bad(key, v, want)
        if isinstance(v, float) and not math.isfinite(v):
            raise self.bad(key, v, want)
        return v

    def text(self, key: str, choices: tuple[str, ...] | None = None, default: Any = None):
        v = self.get(key, str, "a string" if choices is None else " or ".join(choices), default)
        if v is not None and choices is not None and v not in choices:
            raise self.bad(key, v, " or ".join(choices))
        return v

    def required(self, key: str) -> Any:
        if key not in self.d:
            raise CardError(f"{self.where}: the card has no {key!r}.")
        return self.d[key]

    def ints(self, key: str) -> list[int] | None:
        v = self.d.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            raise self.bad(key, v, "a list of whole numbers")
        return list(v)

    def generator(self, key: str = "generator") -> GeneratorConfig:
        g = _Fields(self.required(key), f"{self.where} ({key})")
        names = {f.name: f for f in dataclasses.fields(GeneratorConfig)}
        unknown = sorted(set(g.d) - set(names))
        if unknown:
            raise CardError(f"{self.where}: unknown generator field(s) {', '.join(unknown)}.")
        values: dict[str, Any] = {}
        for name in g.d:
            if name == "norm":
                values[name] = g.text(name)
            elif name == "dropout":
                values[name] = g.get(name, bool, "true or false")
            else:
                values[name] = g.get(name, int, "a whole number")
        try:
            return GeneratorConfig(**{k: v for k, v in values.items() if v is not None})
        except P2PError as exc:
            raise CardError(f"{self.where}: {exc}") from None


# ---------------------------------------------------------------------------------- cards


@dataclass(frozen=True)
class TrainingInfo:
    """Where and how a generator was trained (all optional: a canonical checkpoint has none).

    Attributes:
        data: the training data (a dataset folder, or None for synthetic facades drawn on the fly).
        seed: the run's seed.
        step / epoch: when these weights were saved.
        val_l1 / val_psnr: validation L1 (outputs in [-1, 1]) and PSNR (dB) at that step.
    """

    data: str | None = None
    seed: int | None = None
    step: int | None = None
    epoch: int | None = None
    val_l1: float | None = None
    val_psnr: float | None = None

    @classmethod
    def parse(cls, f: _Fields) -> TrainingInfo:
        num = (int, float)
        return cls(
            data=f.text("data"),
            seed=f.get("seed", int, "a whole number"),
            step=f.get("step", int, "a whole number"),
            epoch=f.get("epoch", int, "a whole number"),
            val_l1=f.get("val_l1", num, "a number"),
            val_psnr=f.get("val_psnr", num, "a number"),
        )


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What a generator is: the card beside its weights, and the core of every export's card.

    Attributes:
        generator: the architecture.
        test_norm: ``stats`` (per-image statistics, the paper) or ``running`` (running averages).
        direction: ``AtoB`` or ``BtoA``: which half of an A|B pair is the input. None: not
            known (a canonical ``latest_net_G.pth``).
        training: data, seed, step, validation figures (None when unknown).
        source: ``p2p`` (trained here) or ``canonical`` (a canonical-repo ``.pth``).
        checkpoint_sha256: sha256 of the weights file: of the file itself for a checkpoint
            (filled when it is read), of the source checkpoint for an export.
        p2p_deploy_version / saved_at: what wrote the card, and when.
    """

    generator: GeneratorConfig
    test_norm: str
    direction: str | None = None
    training: TrainingInfo | None = None
    source: str = "p2p"
    checkpoint_sha256: str | None = None
    p2p_deploy_version: str | None = None
    saved_at: str | None = None

    FORMAT = CHECKPOINT_FORMAT

    def __post_init__(self) -> None:
        if self.test_norm not in TEST_NORMS:
            raise CardError(f"test norm must be one of {', '.join(TEST_NORMS)}: {self.test_norm!r}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise CardError(f"direction must be AtoB or BtoA, got {self.direction!r}.")

    @property
    def image_size(self) -> int:
        return self.generator.image_size

    def stamped(self) -> ModelCard:
        """This card with the writing version and the time filled in."""
        return dataclasses.replace(
            self,
            p2p_deploy_version=__version__,
            saved_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "format_version": CARD_VERSION, **dataclasses.asdict(self)}

    def write(self, model_file: str | Path) -> Path:
        """Atomically write this card beside ``model_file``; returns the card's path."""
        path = card_path(model_file)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def _core(cls, f: _Fields) -> dict[str, Any]:
        """The ModelCard fields of a version-2 card (checkpoint or export)."""
        generator = f.generator()
        training = f.d.get("training")
        training = None if training is None else TrainingInfo.parse(_Fields(training, f.where))
        return {
            "generator": generator,
            "test_norm": f.text("test_norm", TEST_NORMS) or default_test_norm(generator.norm),
            "direction": f.text("direction", DIRECTIONS),
            "training": training,
            "source": f.text("source", SOURCES, "p2p"),
            "checkpoint_sha256": f.text("checkpoint_sha256"),
            "p2p_deploy_version": f.text("p2p_deploy_version"),
            "saved_at": f.text("saved_at"),
        }

    @classmethod
    def parse(cls, d: Any, where: Path | str) -> ModelCard:
        """A checkpoint card from its JSON object (version 1 or 2)."""
        f = _Fields(d, where)
        if f.d.get("format") != CHECKPOINT_FORMAT:
            raise CardError(f"{where}: not a p2p-deploy generator card.")
        if f.d.get("format_version", 1) == 1:
            # Version 1 kept direction, test norm and the training figures at the top level.
            generator = f.generator()
            return cls(
                generator=generator,
                test_norm=f.text("test_norm", TEST_NORMS) or default_test_norm(generator.norm),
                direction=f.text("direction", DIRECTIONS),
                training=TrainingInfo.parse(f),
                p2p_deploy_version=f.text("p2p_deploy_version"),
                saved_at=f.text("saved_at"),
            )
        return cls(**cls._core(f))


@dataclass(frozen=True, kw_only=True)
class ExportCard(ModelCard):
    """The card of an exported model: its generator's :class:`ModelCard` plus what the export
    made of it.

    Attributes:
        kind: ``onnx``, ``openvino`` or ``tensorrt``.
        precision: ``fp32``, ``fp16`` or ``int8`` (the QDQ graph of ``p2p export --int8``): the
            compute precision, verified after export/build.
        io_dtype: dtype of the input/output tensors (``float32`` or ``float16``).
        input_name / output_name: tensor names (``input`` / ``output``).
        input_shape / output_shape: with ``-1`` for each dynamic axis, e.g. [-1, 3, 256, 256]
            (dynamic batch, fixed square) or [-1, 3, -1, -1] (dynamic height and width too).
        opset: ONNX opset of the graph (or of the ONNX an engine was built from).
        batch_profile: [min, opt, max] batch of a TensorRT engine's optimisation profile.
        spatial_profile: the MIN:OPT:MAX frame sizes of an export with dynamic height and width
            (``p2p export --spatial``): its parity sizes, a TensorRT engine's profile over H
            and W, the sizes INT8 was calibrated and gated at. None (and in cards written
            before it existed): a fixed ``image_size`` square.
        tensorrt_version, gpu_name, compute_capability: what a TensorRT engine is tied to.
        hardware_compatible / version_compatible: engine built to run on other GPUs / versions.
        extra: anything else worth keeping (build time, parity figures, quantization ...).
    """

    kind: str
    precision: str
    io_dtype: str = "float32"
    input_name: str = "input"
    output_name: str = "output"
    input_shape: list[int] = field(default_factory=list)
    output_shape: list[int] = field(default_factory=list)
    opset: int | None = None
    batch_profile: list[int] | None = None
    spatial_profile: SpatialProfile | None = None
    tensorrt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    hardware_compatible: bool = False
    version_compatible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    FORMAT = EXPORT_FORMAT

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precision not in PRECISIONS:
            raise CardError(f"precision must be one of {', '.join(PRECISIONS)}: {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.spatial_profile is not None:  # lists, as JSON reads them back
            d["spatial_profile"] = self.spatial_profile.to_dict()
        return d

    @property
    def stride(self) -> int:
        """Height and width the model takes are multiples of this (``2**n_down``)."""
        return self.generator.stride

    def size_range(self) -> SizeRange:
        """The frame sizes the model takes: its spatial profile, else its fixed square."""
        if self.spatial_profile is None:
            return SizeRange.square(self.image_size)
        return self.spatial_profile.size_range(self.stride)

    @property
    def model_card(self) -> ModelCard:
        """The generator's card this export carries."""
        core = {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelCard)}
        return ModelCard(**core)

    @classmethod
    def of(cls, card: ModelCard, **export: Any) -> ExportCard:
        """``card`` (a checkpoint's, or another export's) extended with ``export`` facts."""
        core = {f.name: getattr(card, f.name) for f in dataclasses.fields(ModelCard)}
        if isinstance(card, ExportCard):
            core.update(
                {f.name: getattr(card, f.name) for f in dataclasses.fields(ExportCard)}
            )
        return cls(**{**core, **export})

    @classmethod
    def parse(cls, d: Any, where: Path | str) -> ExportCard:
        """An export card from its JSON object (version 1 or 2)."""
        f = _Fields(d, where)
        if f.d.get("format") != EXPORT_FORMAT:
            raise CardError(f"{where}: not a p2p-deploy model card.")
        version = f.d.get("format_version", 1)
        extra = f.get("extra", dict, "an object", {})
        if version == 1:
            # Version 1 had no direction of its own (an exporter could put one in ``extra``).
            generator = f.generator()
            core: dict[str, Any] = {
                "generator": generator,
                "test_norm": f.text("test_norm", TEST_NORMS) or default_test_norm(generator.norm),
                "direction": _Fields(extra, where).text("direction", DIRECTIONS),
                "checkpoint_sha256": f.text("checkpoint_sha256"),
            }
        else:
            core = cls._core(f)
        profile = f.ints("batch_profile")
        spatial = f.d.get("spatial_profile")
        if spatial is not None:
            try:
                spatial = SpatialProfile.from_dict(spatial, str(where))
            except P2PError as exc:
                raise CardError(str(exc)) from None
        return cls(
            **core,
            kind=f.text("kind", EXPORT_KINDS),
            precision=f.text("precision", PRECISIONS),
            io_dtype=f.text("io_dtype", ("float32", "float16"), "float32"),
            input_name=f.text("input_name", None, "input"),
            output_name=f.text("output_name", None, "output"),
            input_shape=f.ints("input_shape") or [],
            output_shape=f.ints("output_shape") or [],
            opset=f.get("opset", int, "a whole number"),
            batch_profile=profile,
            spatial_profile=spatial,
            tensorrt_version=f.text("tensorrt_version"),
            gpu_name=f.text("gpu_name"),
            compute_capability=f.text("compute_capability"),
            hardware_compatible=bool(f.get("hardware_compatible", bool, "true or false")),
            version_compatible=bool(f.get("version_compatible", bool, "true or false")),
            extra=extra,
        )


def read_card(model_file: str | Path) -> ModelCard | None:
    """The card beside ``model_file`` (a :class:`ModelCard` or :class:`ExportCard`, by its
    ``format``); None when there is none.

    Raises:
        CardError: the card exists but cannot be read, is not JSON, is foreign, or holds a
            wrong value.
    """
    path = card_path(model_file)
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CardError(f"{path}: not a card (binary, not JSON text).") from None
    except json.JSONDecodeError as exc:
        raise CardError(f"{path}: not a card (not JSON: {exc.msg}, line {exc.lineno}).") from None
    except OSError as exc:
        raise CardError(f"{path}: cannot read the card ({exc.strerror or exc}).") from None
    if not isinstance(d, dict):
        kind = {list: "list", str: "string"}.get(type(d), type(d).__name__)
        raise CardError(f"{path}: not a card (a JSON {kind}, not an object).")
    fmt = d.get("format")
    if fmt == EXPORT_FORMAT:
        return ExportCard.parse(d, path)
    if fmt == CHECKPOINT_FORMAT:
        return ModelCard.parse(d, path)
    raise CardError(f"{path}: not a p2p-deploy card (format {fmt!r}).")


def read_export_card(model_file: str | Path) -> ExportCard:
    """The :class:`ExportCard` of an exported model; a missing or non-export card is an error.

    Raises:
        CardError: no card beside it (re-export), or a card of another kind.
    """
    card = read_card(model_file)
    if card is None:
        raise CardError(
            f"{model_file}: no card {card_path(model_file).name} beside it; re-export with "
            "`p2p export`."
        )
    if not isinstance(card, ExportCard):
        raise CardError(f"{card_path(model_file)}: a checkpoint's card, not an exported model's.")
    return card
