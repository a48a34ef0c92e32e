"""What a TensorRT engine's input takes, from its shape and optimisation profile: plain Python,
tested without TensorRT.

An engine built from a fixed-square ONNX has input shape ``(-1, 3, S, S)`` (dynamic batch);
one built with ``p2p export --spatial`` has ``(-1, 3, -1, -1)`` and a profile over batch,
height and width, read with ``ICudaEngine.get_tensor_profile_shape(name, 0)`` -> the
``[min, opt, max]`` full NCHW shapes (what Polygraphy's ``Profile().add(name, min, opt, max)``
set at build time). The runner sizes its buffers for the profile's max shape (NVIDIA's
samples/python/common_runtime.py ``allocate_buffers``: ``get_tensor_profile_shape(name,
idx)[-1]``) and refuses, or ``p2p run --resize native`` tiles, anything outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2p_deploy.errors import EngineMismatch
from p2p_deploy.models.card import ExportCard
from p2p_deploy.models.spatial import Size, SizeRange, format_size


@dataclass(frozen=True)
class EngineLimits:
    """The batch and frame sizes one engine takes.

    Attributes:
        min_batch / max_batch: the profile's batch range (both the static batch otherwise).
        sizes: the (H, W) it takes (its profile over H and W, else exactly S x S).
        max_hw: the largest (H, W): with ``max_batch``, what the buffers are sized for.
    """

    min_batch: int
    max_batch: int
    sizes: SizeRange
    max_hw: Size


def engine_limits(
    path: Path | str,
    shape: Sequence[int],
    profile: Sequence[Sequence[int]] | None,
    card: ExportCard,
) -> EngineLimits:
    """The :class:`EngineLimits` of an engine whose input has ``shape`` (``-1`` for a dynamic
    axis) and optimisation profile 0 ``profile`` (``[min, opt, max]`` NCHW shapes, None when
    the input is fully static), checked against its ``card``.

    Raises:
        EngineMismatch: the shape, the profile and the card disagree (one line naming them).
    """
    shape = tuple(int(d) for d in shape)
    s = card.image_size
    spatial = card.spatial_profile
    if len(shape) != 4 or shape[1] != 3:
        raise EngineMismatch(f"{path}: engine input {shape} is not (N, 3, H, W).")
    dynamic_hw = shape[2] == -1 or shape[3] == -1
    if spatial is None and (dynamic_hw or shape[2:] != (s, s)):
        raise EngineMismatch(
            f"{path}: engine input {shape} does not match its card (-1, 3, {s}, {s})."
        )
    if spatial is not None and not dynamic_hw:
        raise EngineMismatch(
            f"{path}: engine input {shape} has a fixed size but its card a spatial profile "
            f"{spatial.describe()}; rebuild it with `p2p export --spatial`."
        )
    if profile is None or -1 not in shape:
        n = shape[0]
        return EngineLimits(n, n, SizeRange.square(s), (s, s))
    lo, _opt, hi = (tuple(int(d) for d in p) for p in profile)
    if spatial is None:
        return EngineLimits(lo[0], hi[0], SizeRange.square(s), (s, s))
    got = SizeRange((lo[2], lo[3]), (hi[2], hi[3]), card.stride)
    if (got.min, got.max) != (spatial.min, spatial.max):
        raise EngineMismatch(
            f"{path}: engine profile over H and W is {format_size(got.min)} to "
            f"{format_size(hi[2:4])} but its card says {spatial.describe()}; rebuild it."
        )
    return EngineLimits(lo[0], hi[0], got, (hi[2], hi[3]))
