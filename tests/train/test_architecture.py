"""Exact parameter counts of the paper's networks, built as the trainer builds them."""

from __future__ import annotations

import torch

from p2p_deploy.models import PatchDiscriminator, UNetGenerator
from p2p_deploy.train.config import TrainConfig


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_full_size_counts_from_train_config() -> None:
    with torch.device("meta"):  # shapes only: no 200 MB of weights on a shared CPU
        for norm, want_g in (("batch", 54_413_955), ("instance", 54_409_603)):
            cfg = TrainConfig(norm=norm)
            g = UNetGenerator(cfg.generator_config())
            assert g.cfg.n_down == 8
            assert _count(g) == want_g
        d = PatchDiscriminator(TrainConfig().discriminator_config())
        assert _count(d) == 2_768_705


def test_image_size_sets_downsamplings() -> None:
    for size, n in ((256, 8), (128, 7), (64, 6), (32, 5)):
        assert TrainConfig(image_size=size).generator_config().n_down == n
    assert TrainConfig(image_size=128).load_size == 143
    assert TrainConfig().load_size == 286


def test_no_dropout_and_d_layers() -> None:
    with torch.device("meta"):
        g = UNetGenerator(TrainConfig(dropout=False).generator_config())
        assert not any(isinstance(m, torch.nn.Dropout) for m in g.modules())
        d2 = PatchDiscriminator(TrainConfig(n_layers_d=2).discriminator_config())
        assert _count(d2) < 2_768_705
