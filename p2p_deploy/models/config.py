"""Architecture configs: frozen dataclasses that travel with every checkpoint and export.

A checkpoint carries its :class:`GeneratorConfig` in a JSON beside the weights, so export and
run never ask for architecture flags again.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from p2p_deploy.errors import P2PError

NORMS: tuple[str, ...] = ("batch", "instance")
# The U-Net needs the four channel-widening levels (ngf..ngf*8) plus an innermost level.
MIN_DOWNSAMPLINGS = 5


def downsamplings_for(image_size: int) -> int:
    """Number of stride-2 convs that take ``image_size`` down to 1x1 (256 -> 8, 64 -> 6)."""
    n = int(round(math.log2(image_size))) if image_size > 0 else 0
    if image_size <= 0 or 2**n != image_size:
        raise P2PError(f"image size {image_size} is not a power of two (use 256, 128, 64 or 32).")
    return n


@dataclass(frozen=True)
class GeneratorConfig:
    """U-Net generator architecture (pix2pix ``unet_256`` at the defaults).

    Attributes:
        in_channels: channels of the condition image (3 for RGB).
        out_channels: channels of the generated image (3 for RGB).
        ngf: filters of the first conv; levels use ngf, 2ngf, 4ngf, then 8ngf.
        norm: ``batch`` (paper) or ``instance`` (affine-free, every conv carries a bias).
        image_size: square input/output size in pixels; must be divisible by ``2**n_down``.
        n_down: stride-2 downsamplings; by default ``log2(image_size)`` so the bottleneck is 1x1.
        dropout: dropout 0.5 in the 8ngf decoder blocks next to the innermost one (training only).
    """

    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    norm: str = "batch"
    image_size: int = 256
    n_down: int = field(default=0)
    dropout: bool = True

    def __post_init__(self) -> None:
        if self.n_down == 0:
            object.__setattr__(self, "n_down", downsamplings_for(self.image_size))
        if self.norm not in NORMS:
            raise P2PError(f"unknown norm {self.norm!r}: use one of {', '.join(NORMS)}.")
        if self.ngf < 1 or self.in_channels < 1 or self.out_channels < 1:
            raise P2PError("ngf and channel counts must be positive.")
        if self.n_down < MIN_DOWNSAMPLINGS:
            raise P2PError(
                f"the U-Net needs at least {MIN_DOWNSAMPLINGS} downsamplings, got {self.n_down}."
            )
        if self.image_size % (2**self.n_down) != 0:
            raise P2PError(f"image size {self.image_size} is not divisible by 2**{self.n_down}.")

    @property
    def stride(self) -> int:
        """``2**n_down``: the generator runs on any height and width that are multiples of it
        (fully convolutional; at ``image_size`` the bottleneck is 1x1, larger frames give a
        larger one)."""
        return 2**self.n_down

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        """Build from a JSON dict; unknown keys are an error (a foreign file, not ours)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise P2PError(f"unknown generator config keys: {', '.join(sorted(unknown))}.")
        return cls(**d)


def level_channels(cfg: GeneratorConfig) -> list[int]:
    """Output channels of each encoder level: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (n_down items).

    Plain arithmetic (no torch): the generator builds its layers from it and
    :mod:`.flops` counts its cost from it on a box without torch."""
    return [cfg.ngf * min(2**i, 8) for i in range(cfg.n_down)]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """70x70 PatchGAN (at n_layers=3): 4x4 convs ndf, 2ndf, 4ndf stride 2, 8ndf stride 1, 1."""

    in_channels: int = 6  # condition and image, concatenated
    ndf: int = 64
    n_layers: int = 3
    norm: str = "batch"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise P2PError(f"unknown norm {self.norm!r}: use one of {', '.join(NORMS)}.")
        if self.n_layers < 1:
            raise P2PError("the discriminator needs at least one layer.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
