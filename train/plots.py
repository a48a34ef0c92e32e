"""Pictures of a run: sample grids (input | generated | target) and the loss-curve PNG."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from p2p_deploy.atomic import atomic_path
from p2p_deploy.imaging import tensor_to_bgr8


def sample_grid(
    inputs: np.ndarray, fakes: np.ndarray, targets: np.ndarray, max_rows: int = 4
) -> np.ndarray:
    """Rows of ``input | generated | target``.

    Args: three (N, 3, S, S) float arrays in [-1, 1] (RGB).
    Returns: (rows * S, 3 * S, 3) uint8 **BGR** (OpenCV's order, ready for
        :func:`p2p_deploy.media.images.write_image`).
    """
    n = min(max_rows, len(inputs))
    cols = [tensor_to_bgr8(x[:n]) for x in (inputs, fakes, targets)]
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(n)]
    return np.concatenate(rows, axis=0)


def plot_loss_curve(losses_csv: Path, val_csv: Path, out_png: Path) -> bool:
    """Plot D, G GAN and G L1 losses by step (and val L1 by step when known) to ``out_png``.

    Returns False (and writes nothing) when there are no rows yet.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def read(path: Path) -> list[dict[str, str]]:
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    rows, val = read(losses_csv), read(val_csv)
    if not rows:
        return False
    steps = [int(r["step"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("d", "D"), ("g_gan", "G GAN")):
        ax1.plot(steps, [float(r[key]) for r in rows], label=label)
    ax1.set_xlabel("step")
    ax1.set_title("adversarial losses")
    ax1.legend()
    ax2.plot(steps, [float(r["g_l1"]) for r in rows], label="G L1 (train)")
    if val:
        ax2.plot(
            [int(r["step"]) for r in val], [float(r["val_l1"]) for r in val], "o-", label="val L1"
        )
    ax2.set_xlabel("step")
    ax2.set_title("L1")
    ax2.legend()
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return True
