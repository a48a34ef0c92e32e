"""Helpers shared by tests (importable as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

TINY = {"ngf": 8, "image_size": 32, "n_down": 5}


def make_tiny_generator(seed: int = 0, **overrides):
    """A randomly initialised tiny UNetGenerator whose BN running stats differ from identity,
    so that ``stats`` and ``running`` test-norm modes give visibly different outputs."""
    import torch

    from p2p_deploy.config import GeneratorConfig
    from p2p_deploy.models import UNetGenerator, init_weights

    cfg = GeneratorConfig(**{**TINY, **overrides})
    g = torch.Generator().manual_seed(seed)
    model = init_weights(UNetGenerator(cfg), generator=g)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
    return model
