"""Helpers shared by tests (importable as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

TINY = {"ngf": 8, "image_size": 32, "n_down": 5}


def make_tiny_generator(seed: int = 0, **overrides):
    """A randomly initialised tiny UNetGenerator whose BN running stats differ from identity,
    so that ``stats`` and ``running`` test-norm modes give visibly different outputs."""
    import torch

    from p2p_deploy.models import UNetGenerator, init_weights
    from p2p_deploy.models.config import GeneratorConfig

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


def save_checkpoint(model, path, meta: dict | None = None):
    """Save ``model`` as a p2p checkpoint at ``path`` with a card made from ``meta`` (the
    direction, test norm and training fields: step, epoch, seed, data, val_l1, val_psnr)."""
    from p2p_deploy.models.card import ModelCard, TrainingInfo, default_test_norm
    from p2p_deploy.models.weights import save_generator

    meta = dict(meta or {})
    training = {k: meta.pop(k) for k in list(meta) if k in TrainingInfo.__dataclass_fields__}
    card = ModelCard(
        generator=model.cfg,
        test_norm=meta.pop("test_norm", default_test_norm(model.cfg.norm)),
        direction=meta.pop("direction", None),
        training=TrainingInfo(**training) if training else None,
    )
    assert not meta, f"unknown card fields {sorted(meta)}"
    return save_generator(model, path, card)


def build_wheel(out):
    """Build the project's wheel into ``out`` (offline: this venv's own setuptools, no build
    isolation) and return its path."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(repo)],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = Path(out).glob("p2p_deploy-*.whl")
    return whl


def sigint_as_ctrl_c() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: SIGINT back to its default,
    so that Python in the child installs its Ctrl-C handler. A suite started as a background
    job of a script (``make test &``) inherits SIGINT *ignored*, which Python keeps, and the
    child would never see the interrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
