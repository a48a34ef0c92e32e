"""The JSON sidecar written beside every exported model (``model.onnx.json``, ``model.plan.json``).

It lets the runtime refuse a mismatched model with one clear sentence instead of a TensorRT
stack trace, and lets bench label precisions it has verified. Read by the runtime (this package)
and written by ``export/``, so the schema lives here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import write_json
from p2p_deploy.config import GeneratorConfig
from p2p_deploy.errors import P2PError

FORMAT = "p2p-deploy/model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelSidecar:
    """What an exported model is and what it was built for.

    Attributes:
        kind: ``onnx`` or ``tensorrt``.
        precision: ``fp32``, ``fp16`` or ``int8`` (the QDQ graph of ``p2p export --int8``): the
            compute precision, verified after export/build.
        io_dtype: dtype of the ``input``/``output`` tensors (``float32`` or ``float16``).
        generator: the architecture (a :class:`GeneratorConfig` dict).
        test_norm: ``stats`` (per-image statistics) or ``running`` (running averages).
        input_name / output_name: tensor names (``input`` / ``output``).
        input_shape / output_shape: with ``-1`` for the dynamic batch axis, e.g. [-1, 3, 256, 256].
        opset: ONNX opset of the graph (or of the ONNX an engine was built from).
        checkpoint_sha256: sha256 of the source checkpoint file.
        batch_profile: [min, opt, max] batch of a TensorRT engine's optimisation profile.
        tensorrt_version, gpu_name, compute_capability: what a TensorRT engine is tied to.
        hardware_compatible / version_compatible: engine built to run on other GPUs / versions.
        extra: anything else worth keeping (build time, parity figures, ...).
    """

    kind: str
    precision: str
    io_dtype: str
    generator: dict[str, Any]
    test_norm: str
    input_name: str = "input"
    output_name: str = "output"
    input_shape: list[int] = field(default_factory=list)
    output_shape: list[int] = field(default_factory=list)
    opset: int | None = None
    checkpoint_sha256: str | None = None
    batch_profile: list[int] | None = None
    tensorrt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    hardware_compatible: bool = False
    version_compatible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig.from_dict(self.generator)

    @property
    def image_size(self) -> int:
        return int(self.generator["image_size"])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def write(self, model_path: str | Path) -> Path:
        """Atomically write the sidecar beside ``model_path``; returns its path."""
        path = sidecar_for(model_path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, model_path: str | Path) -> ModelSidecar:
        """Read the sidecar of ``model_path``.

        Raises:
            P2PError: missing, unreadable, or not a p2p-deploy model sidecar.
        """
        path = sidecar_for(model_path)
        if not path.is_file():
            raise P2PError(
                f"{model_path}: no sidecar {path.name} beside it; re-export with `p2p export`."
            )
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise P2PError(f"{path}: unreadable sidecar ({exc}).") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise P2PError(f"{path}: not a p2p-deploy model sidecar.")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def sidecar_for(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (the full name, so .onnx and .plan never collide)."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")
