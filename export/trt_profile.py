"""The TensorRT optimisation profile of a build: batch, and height and width for an export with
a spatial profile (``p2p export --spatial``). Plain Python, tested without TensorRT.

TensorRT takes one ``IOptimizationProfile.set_shape(input, min, opt, max)`` per input, each a
full NCHW shape; Polygraphy's ``Profile().add(name, min, opt, max)`` holds exactly those three
shapes and ``CreateConfig`` passes them on (``Profile.to_trt`` ->
``trt_profile.set_shape(inp.name, shapes.min, shapes.opt, shapes.max)``, after
``fill_defaults``, which leaves a named input alone). The batch profile gives N, the export's
spatial profile H and W (the same MIN/OPT/MAX ordinal: the smallest batch at the smallest size,
the largest at the largest); a fixed-square export has S x S throughout.
"""

from __future__ import annotations

from p2p_deploy.models.card import ExportCard


def profile_shapes(
    batch: list[int] | tuple[int, int, int], card: ExportCard
) -> tuple[tuple[int, int, int, int], ...]:
    """(min, opt, max) NCHW input shapes for ``batch`` (min, opt, max) and the model ``card``
    describes: (N, C, S, S), or (N, C, H, W) over its spatial profile."""
    channels = card.generator.in_channels
    s = card.image_size
    hws = card.spatial_profile.sizes() if card.spatial_profile else ((s, s),) * 3
    return tuple((int(n), channels, h, w) for n, (h, w) in zip(batch, hws, strict=True))


def describe_profile(shapes: tuple[tuple[int, int, int, int], ...]) -> str:
    """``1x3x256x256 .. 4x3x768x1280 .. 16x3x1280x2048`` (min .. opt .. max)."""
    return " .. ".join("x".join(map(str, s)) for s in shapes)
