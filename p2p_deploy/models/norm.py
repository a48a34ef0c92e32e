"""Normalisation layers of the paper's networks."""

from __future__ import annotations

from torch import nn


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch``: BatchNorm2d (affine, running stats); ``instance``: InstanceNorm2d, affine-free.

    The affine-free, stat-free instance norm is what the canonical PyTorch repo uses, and why its
    convs then carry biases.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise ValueError(f"unknown norm {kind!r}")
