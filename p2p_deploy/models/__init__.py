"""Models on disk and in memory: the one owner of everything a model is.

* the networks: :mod:`.generator` (U-Net), :mod:`.discriminator` (PatchGAN), :mod:`.init`,
  :mod:`.norm`, their configs in :mod:`.config`, their cost in :mod:`.flops`;
* the test-time normalisation choice: :mod:`.inference`;
* the **cards** that travel beside every model file (:mod:`.card`: ``ModelCard`` beside
  checkpoint weights, ``ExportCard`` beside an exported ONNX / IR / plan);
* the run-folder layout and the card-naming rule (:mod:`.layout`);
* reading and writing weights (:mod:`.weights`, canonical ``latest_net_G.pth`` in
  :mod:`.canonical`);
* the **one reader**, :func:`open_model` (:mod:`.opening`): any path a user gives (run folder,
  ``.safetensors``, ``.pth``, ``.onnx``, ``.xml``, ``.plan``) -> a :class:`ModelFile` with its
  card, read once.

Importing this package imports neither torch nor onnx: the torch modules load on first use of
their names (``from p2p_deploy.models import UNetGenerator`` imports torch, as it must).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "UNetGenerator": "p2p_deploy.models.generator",
    "PatchDiscriminator": "p2p_deploy.models.discriminator",
    "init_weights": "p2p_deploy.models.init",
    "open_model": "p2p_deploy.models.opening",
    "ModelFile": "p2p_deploy.models.opening",
    "ModelCard": "p2p_deploy.models.card",
    "ExportCard": "p2p_deploy.models.card",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
