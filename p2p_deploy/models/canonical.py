"""Checkpoints of the canonical PyTorch pix2pix repository (``latest_net_G.pth``).

That repo's U-Net is nested blocks; its state_dict keys walk the nesting:

    outermost  model.model.[downconv 0, sub 1, ReLU 2, upconv 3, Tanh 4]
    middle     P.[LeakyReLU 0, downconv 1, norm 2, sub 3, ReLU 4, upconv 5, norm 6, Dropout 7]
    innermost  P.[LeakyReLU 0, downconv 1, ReLU 2, upconv 3, norm 4]

with P = "model.model.1.model." for level 1 and P + "3.model." for each level below. This module
infers the architecture from the tensors (ngf from the first conv, downsamplings from the
nesting depth, batch vs instance norm from the presence of norm parameters) and renames the
keys onto :class:`~p2p_deploy.models.generator.UNetGenerator`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from p2p_deploy.errors import CheckpointError
from p2p_deploy.models.config import GeneratorConfig

FIRST_CONV = "model.model.0.weight"


def is_canonical(state: Mapping[str, object]) -> bool:
    """True when ``state`` looks like the canonical repo's U-Net state_dict."""
    return FIRST_CONV in state


def _level_prefixes(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Prefixes of levels 1 .. innermost, found by walking the nesting."""
    prefixes = []
    p = "model.model.1.model."
    while f"{p}1.weight" in state:
        prefixes.append(p)
        p = f"{p}3.model."
    return prefixes


def infer_config(state: Mapping[str, torch.Tensor], name: str = "checkpoint") -> GeneratorConfig:
    """Architecture of a canonical U-Net state_dict.

    Raises:
        CheckpointError: when the tensors fit no U-Net.
    """
    if not is_canonical(state):
        raise CheckpointError(f"{name}: not a pix2pix U-Net state_dict (no '{FIRST_CONV}').")
    first = state[FIRST_CONV]
    if first.ndim != 4 or tuple(first.shape[2:]) != (4, 4):
        raise CheckpointError(
            f"{name}: first conv has shape {tuple(first.shape)}, not (ngf, C, 4, 4)."
        )
    ngf, in_ch = int(first.shape[0]), int(first.shape[1])
    prefixes = _level_prefixes(state)
    n_down = len(prefixes) + 1
    out_w = state.get("model.model.3.weight")
    if out_w is None or len(prefixes) < 1:
        raise CheckpointError(f"{name}: no decoder output layer; not a U-Net generator.")
    out_ch = int(out_w.shape[1])
    norm = "batch" if f"{prefixes[0]}2.weight" in state else "instance"
    try:
        cfg = GeneratorConfig(
            in_channels=in_ch,
            out_channels=out_ch,
            ngf=ngf,
            norm=norm,
            image_size=2**n_down,
            n_down=n_down,
            dropout=True,
        )
    except Exception as exc:  # noqa: BLE001 - any config complaint means "fits no U-Net"
        raise CheckpointError(f"{name}: shapes fit no U-Net ({exc}).") from None
    return cfg


def convert_state_dict(
    state: Mapping[str, torch.Tensor], cfg: GeneratorConfig
) -> dict[str, torch.Tensor]:
    """Rename canonical keys onto UNetGenerator keys (``down.i.*`` / ``up.j.*``).

    Levels: 0 = outermost, n-1 = innermost; decoder index j = n-1-i.
    """
    n = cfg.n_down
    prefixes = _level_prefixes(state)
    mapping: dict[str, str] = {"model.model.0.": "down.0.0.", "model.model.3.": f"up.{n - 1}.1."}
    for i, p in enumerate(prefixes, start=1):
        j = n - 1 - i
        if i < n - 1:  # middle level
            mapping.update(
                {
                    f"{p}1.": f"down.{i}.1.",
                    f"{p}2.": f"down.{i}.2.",
                    f"{p}5.": f"up.{j}.1.",
                    f"{p}6.": f"up.{j}.2.",
                }
            )
        else:  # innermost
            mapping.update({f"{p}1.": f"down.{i}.1.", f"{p}3.": "up.0.1.", f"{p}4.": "up.0.2."})
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        # Longest prefix first: "model.model.1.model.3.model.1." must not match a shorter one.
        for src in sorted(mapping, key=len, reverse=True):
            if key.startswith(src) and "." not in key[len(src) :]:
                out[mapping[src] + key[len(src) :]] = value
                break
        else:
            raise CheckpointError(f"unexpected key {key!r} in canonical U-Net state_dict.")
    return out
