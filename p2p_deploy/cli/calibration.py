"""The synthetic-facades calibration source for ``p2p export --int8``.

``export/`` may not import ``train/`` (import-linter keeps them independent), but a run trained
on the synthetic facades is calibrated on the same procedural data by default. The CLI, which
may import both lazily, hands this provider to the exporter.
"""

from __future__ import annotations

import numpy as np


def synthetic_input(index: int, size: int, seed: int, direction: str) -> np.ndarray:
    """The ``index``-th synthetic input image of a run: (size, size, 3) uint8 RGB, a label map
    for ``BtoA`` (the facades convention: label -> photo), a photo for ``AtoB``."""
    from p2p_deploy.train.synthetic import PALETTE_RGB, synthetic_labels, synthetic_pair

    if direction == "AtoB":
        return synthetic_pair(index, seed=seed, size=size)[0]
    return PALETTE_RGB[synthetic_labels(index, seed=seed, size=size)]
