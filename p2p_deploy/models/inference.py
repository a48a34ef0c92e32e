"""Preparing a generator for inference: the test-time normalisation choice, made on purpose.

The paper and both reference codes run the generator at test time with *batch statistics* (and
dropout). With batch size 1, batch norm in train mode is instance norm with the BN affine weights.
Deployment runs batches of several frames, and frames must never share statistics, so the
``stats`` mode replaces each batch norm (BatchNorm2d, or the SyncBatchNorm that multi-GPU
training converts it to) by a per-image normalisation (``F.instance_norm`` with
the BN's weight and bias), which exports to ONNX ``InstanceNormalization``. The ``running`` mode
is plain ``eval()``: running averages, the usual PyTorch deployment, which gives different images.
Dropout is off in both modes: the output must be deterministic.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from p2p_deploy.models.card import TEST_NORMS, default_test_norm

__all__ = ["TEST_NORMS", "PerImageNorm", "default_test_norm", "prepare_generator"]



class PerImageNorm(nn.Module):
    """Batch norm with each image's own statistics (biased variance, as BN in train mode).

    Input and output: (N, C, H, W); statistics over (H, W) per image and channel.
    """

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        self.weight = nn.Parameter(bn.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(bn.bias.detach().clone(), requires_grad=False)
        self.eps = bn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _swap_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        # _BatchNorm covers BatchNorm2d and SyncBatchNorm (a DDP-trained generator): both hold
        # running statistics that the ``stats`` mode must not use.
        if isinstance(child, _BatchNorm):
            setattr(module, name, PerImageNorm(child))
        else:
            _swap_batchnorm(child)


def prepare_generator(generator: nn.Module, test_norm: str) -> nn.Module:
    """Return an inference copy of ``generator`` in eval mode with the chosen normalisation.

    Args:
        generator: a :class:`UNetGenerator` (left untouched).
        test_norm: ``stats`` (per-image statistics) or ``running`` (running averages).
    Returns:
        A new module in eval mode, gradients off; input/output contract unchanged.
    """
    if test_norm not in TEST_NORMS:
        raise ValueError(f"test_norm must be one of {TEST_NORMS}, got {test_norm!r}")
    model = copy.deepcopy(generator)
    if test_norm == "stats":
        _swap_batchnorm(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
