"""Frame sizes and spatial profiles (models/spatial.py), the export card's spatial profile, and
the generator's cost at any size."""

from __future__ import annotations

import json

import pytest

from p2p_deploy.errors import P2PError
from p2p_deploy.models.card import CardError, ExportCard, ModelCard, read_card
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.flops import generator_flops
from p2p_deploy.models.spatial import (
    SizeRange,
    SpatialProfile,
    format_size,
    padded_size,
    parse_size,
)


def test_parse_and_format_sizes() -> None:
    assert parse_size("720x1280") == (720, 1280) == parse_size(" 720 X 1280 ")
    assert parse_size("256") == (256, 256)
    assert format_size((720, 1280)) == "720x1280"
    for bad in ("", "x", "720x", "1.5x2", "-3", "a"):
        with pytest.raises(P2PError, match="HxW"):
            parse_size(bad)
    with pytest.raises(P2PError, match="positive"):
        parse_size("0x5")


def test_padded_size_is_the_next_multiple_of_the_stride() -> None:
    assert padded_size((720, 1280), 256) == (768, 1280)
    assert padded_size((1080, 1920), 256) == (1280, 2048)
    assert padded_size((7, 100), 32) == (32, 128)
    assert padded_size((7, 100), 32, minimum=(64, 64)) == (64, 128)


def test_size_range() -> None:
    square = SizeRange.square(256)
    assert square.fixed and square.accepts((256, 256)) and not square.accepts((256, 512))
    assert square.describe() == "exactly 256x256"
    r = SizeRange((64, 64), (256, 512), 32)
    assert r.accepts((64, 64)) and r.accepts((256, 512)) and r.accepts((96, 160))
    assert not r.accepts((80, 96))  # not a multiple of 32
    assert not r.accepts((32, 64)) and not r.accepts((288, 64))  # below min, above max
    assert r.describe() == "multiples of 32 from 64x64 to 256x512"
    unbounded = SizeRange((32, 32), None, 32)
    assert unbounded.accepts((4096, 8192)) and unbounded.describe().endswith("from 32x32 up")
    assert "288x64 is not among" in r.refusal((288, 64))


def test_spatial_profile_parse_and_check() -> None:
    p = SpatialProfile.parse("256:768x1280:1280x2048")
    assert p.sizes() == ((256, 256), (768, 1280), (1280, 2048))
    assert p.describe() == "256x256:768x1280:1280x2048"
    assert p.check(256) is p
    assert SpatialProfile.parse("512").sizes() == ((512, 512),) * 3
    with pytest.raises(P2PError, match="MIN:OPT:MAX"):
        SpatialProfile.parse("256:512")
    with pytest.raises(P2PError, match="MIN <= OPT <= MAX"):
        SpatialProfile.parse("512:256:1024")
    with pytest.raises(P2PError, match="MIN <= OPT <= MAX"):
        SpatialProfile.parse("256x512:512x256:1024")  # width shrinks from MIN to OPT
    # 720 is not a multiple of the full-size generator's stride: the nearest size is named
    with pytest.raises(P2PError, match=r"OPT 720x1280 is not a multiple .* stride 256.*768x1280"):
        SpatialProfile.parse("256:720x1280:1280x2048").check(256)


def test_export_card_keeps_its_spatial_profile(tmp_path) -> None:
    cfg = GeneratorConfig(ngf=8, image_size=32, n_down=5)
    profile = SpatialProfile((32, 32), (64, 96), (96, 128))
    card = ExportCard.of(
        ModelCard(generator=cfg, test_norm="stats"),
        kind="onnx",
        precision="fp32",
        input_shape=[-1, 3, -1, -1],
        output_shape=[-1, 3, -1, -1],
        spatial_profile=profile,
    )
    path = card.write(tmp_path / "model.onnx")
    d = json.loads(path.read_text())
    assert d["spatial_profile"] == {"min": [32, 32], "opt": [64, 96], "max": [96, 128]}
    back = read_card(tmp_path / "model.onnx")
    assert isinstance(back, ExportCard) and back.spatial_profile == profile
    assert back.stride == 32 and back.size_range() == SizeRange((32, 32), (96, 128), 32)
    # an engine's card built from it carries the profile
    assert ExportCard.of(back, kind="tensorrt", precision="fp16").spatial_profile == profile


def test_cards_without_a_spatial_profile_mean_a_fixed_square(tmp_path) -> None:
    """Version-1 and version-2 cards (written before spatial profiles) load as fixed squares."""
    cfg = GeneratorConfig(ngf=8, image_size=32, n_down=5)
    card = ExportCard.of(ModelCard(generator=cfg, test_norm="stats"), kind="onnx", precision="fp32")
    d = card.to_dict()
    del d["spatial_profile"]
    (tmp_path / "model.onnx.json").write_text(json.dumps(d))
    back = read_card(tmp_path / "model.onnx")
    assert back.spatial_profile is None and back.size_range() == SizeRange.square(32)
    from pathlib import Path

    v1 = Path(__file__).parent.parent / "data" / "cards_v1" / "model.onnx.json"
    if v1.is_file():
        (tmp_path / "v1.onnx.json").write_text(v1.read_text())
        old = read_card(tmp_path / "v1.onnx")
        assert old.spatial_profile is None and old.size_range().fixed


@pytest.mark.parametrize(
    "bad",
    [
        [[32, 32], [64, 64], [96, 96]],
        {"min": [32, 32], "opt": [64, 64]},
        {"min": [32, 32], "opt": [64, "64"], "max": [96, 96]},
        {"min": [64, 64], "opt": [32, 32], "max": [96, 96]},
        {"min": [32, 32], "opt": [64, 64], "max": [96, True]},
    ],
)
def test_a_broken_spatial_profile_is_one_line(tmp_path, bad) -> None:
    cfg = GeneratorConfig(ngf=8, image_size=32, n_down=5)
    d = ExportCard.of(
        ModelCard(generator=cfg, test_norm="stats"), kind="onnx", precision="fp32"
    ).to_dict()
    d["spatial_profile"] = bad
    (tmp_path / "model.onnx.json").write_text(json.dumps(d))
    with pytest.raises(CardError, match="spatial_profile") as info:
        read_card(tmp_path / "model.onnx")
    assert "\n" not in str(info.value) and "model.onnx.json" in str(info.value)


def test_flops_scale_with_the_frame() -> None:
    full = GeneratorConfig()
    assert generator_flops(full) == generator_flops(full, (256, 256))
    assert round(generator_flops(full) / 1e9, 1) == 12.1
    # 720p runs at 768x1280: 15 times the pixels of 256x256, 15 times the work
    assert generator_flops(full, (768, 1280)) == 15 * generator_flops(full)
    assert round(generator_flops(full, (768, 1280)) / 1e9, 1) == 181.4
    assert full.stride == 256 and GeneratorConfig(ngf=8, image_size=32, n_down=5).stride == 32
