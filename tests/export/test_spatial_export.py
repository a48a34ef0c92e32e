"""`p2p export --spatial MIN:OPT:MAX`: dynamic height and width in the ONNX, parity at several
non-square sizes, the profile in the card, INT8 calibrated and gated at its sizes, TensorRT
profiles over H and W (checked against Polygraphy's own Profile code, without TensorRT)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest
import torch
from runtime.media_files import random_bgr

from p2p_deploy.cli import main
from p2p_deploy.errors import EngineMismatch
from p2p_deploy.export.exporter import Exporter
from p2p_deploy.export.onnx_export import export_onnx
from p2p_deploy.export.options import ExportOptions
from p2p_deploy.export.parity import check_onnx_parity, parity_sizes
from p2p_deploy.export.tensorrt_build import BatchProfile, engine_card
from p2p_deploy.export.trt_parity import engine_parity_plan
from p2p_deploy.export.trt_profile import describe_profile, profile_shapes
from p2p_deploy.models.card import ExportCard, ModelCard, read_export_card
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.opening import open_model
from p2p_deploy.models.spatial import SizeRange, SpatialProfile
from p2p_deploy.runners.ort_providers import trt_profile_options
from p2p_deploy.runners.trt_shapes import engine_limits

PROFILE = SpatialProfile((32, 32), (64, 96), (96, 128))
TINY = GeneratorConfig(ngf=8, image_size=32, n_down=5)


@pytest.fixture(scope="module")
def spatial_fp32(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    m = open_model(tiny_checkpoint)
    path = tmp_path_factory.mktemp("spatial_fp32") / "model.onnx"
    export_onnx(m.generator(), path, card=m.card, spatial=PROFILE)
    return path


def _dims(vi) -> list:  # noqa: ANN001 - onnx ValueInfoProto
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


@pytest.mark.slow
def test_onnx_has_dynamic_height_and_width_and_the_card_its_profile(spatial_fp32) -> None:
    proto = onnx.load(str(spatial_fp32))
    for vi in (*proto.graph.input, *proto.graph.output):
        # H and W exported as multiples of the stride (derived dims): no shape arithmetic
        assert _dims(vi) == ["batch", 3, "32*height_blocks", "32*width_blocks"]
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Shape", "Gather", "Reshape", "Resize", "Pad", "Slice"}
    card = read_export_card(spatial_fp32)
    assert card.input_shape == card.output_shape == [-1, 3, -1, -1]
    assert card.spatial_profile == PROFILE
    assert card.size_range() == SizeRange((32, 32), (96, 128), 32)


def test_parity_at_several_non_square_sizes(spatial_fp32, tiny_checkpoint) -> None:
    reference = prepare_generator(open_model(tiny_checkpoint).generator(), "stats")
    report = check_onnx_parity(spatial_fp32, reference)
    sizes = {(f.batch, tuple(f.size)) for f in report.figures}
    assert {(1, (32, 32)), (3, (32, 32)), (1, (64, 96)), (1, (96, 128))} <= sizes
    assert report.passed and report.max_abs_err <= 1e-4
    assert "sizes 32x32, 64x96, 96x128" in report.summary()


@pytest.mark.slow
def test_fp16_export_with_a_profile_passes_its_bar(tiny_checkpoint, tmp_path) -> None:
    m = open_model(tiny_checkpoint)
    path = tmp_path / "model_fp16.onnx"
    export_onnx(m.generator(), path, precision="fp16", card=m.card, spatial=PROFILE)
    reference = prepare_generator(m.generator(), "stats")
    report = check_onnx_parity(path, reference)
    assert report.passed and report.min_psnr_db >= 40
    assert {tuple(f.size) for f in report.figures} == {(32, 32), (64, 96), (96, 128)}


def test_parity_sizes_plan() -> None:
    base = ExportCard.of(ModelCard(generator=TINY, test_norm="stats"), kind="onnx",
                         precision="fp32")  # fmt: skip
    assert parity_sizes(base, (1, 3)) == [(1, (32, 32)), (3, (32, 32))]  # fixed square
    square = ExportCard.of(base, spatial_profile=SpatialProfile.parse("32:64:128"))
    # all three sizes square: one non-square size (MIN height, MAX width) is added
    assert parity_sizes(square, (1,)) == [
        (1, (32, 32)), (1, (64, 64)), (1, (128, 128)), (1, (32, 128))
    ]  # fmt: skip
    above = ExportCard.of(base, spatial_profile=SpatialProfile.parse("64:64x96:96x128"))
    # S x S outside the profile: the batch-mixing run happens at MIN
    assert parity_sizes(above, (1, 3))[0] == (3, (64, 64))


@pytest.mark.slow
def test_export_cli_spatial_and_its_one_line_refusals(capsys, tiny_checkpoint, tmp_path) -> None:
    out = tmp_path / "exp"
    code = main(["export", str(tiny_checkpoint), "-o", str(out), "--spatial", "32:64x96:96x128"])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert "sizes 32x32, 64x96, 96x128: ok" in text.out
    assert read_export_card(out / "model.onnx").spatial_profile == PROFILE
    # not a multiple of the stride: one line naming the stride and a size that would do,
    # before anything is written
    bad = tmp_path / "bad"
    code = main(["export", str(tiny_checkpoint), "-o", str(bad), "--spatial", "32:50x96:96x128"])
    err = capsys.readouterr().err
    assert code == 64 and "stride 32" in err and "64x96" in err and not bad.exists()
    code = main(["export", str(tiny_checkpoint), "-o", str(bad), "--spatial", "96:64:128"])
    err = capsys.readouterr().err
    assert code == 64 and "MIN <= OPT <= MAX" in err and not bad.exists()


@pytest.mark.slow
def test_int8_calibrated_at_opt_and_gated_at_every_size(tiny_checkpoint, tmp_path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(12):
        h, w = [(60, 90), (100, 70), (64, 96)][i % 3]
        cv2.imwrite(str(calib / f"c{i:02d}.png"), cv2.GaussianBlur(random_bgr(h, w, i), (5, 5), 0))
    opts = ExportOptions(
        checkpoint=tiny_checkpoint, out=tmp_path / "out", spatial="32:64x96:96x128", calib=calib
    )
    result = Exporter(opts).run()
    assert result.int8 is not None and result.int8.gate.passed
    card = read_export_card(tmp_path / "out" / "model_int8.onnx")
    assert card.precision == "int8" and card.spatial_profile == PROFILE
    cal = card.extra["calibration"]
    assert cal["calibration_size"] == [64, 96]
    assert cal["gate_sizes"] == [[32, 32], [64, 96], [96, 128]]
    assert result.int8.calibration.calib.shape[1:] == (3, 64, 96)


def test_calibration_count_is_bounded_by_memory() -> None:
    from p2p_deploy.export.calibration import calibration_count

    full = GeneratorConfig()
    assert calibration_count(full, (256, 256), 32) == 32
    n = calibration_count(full, (768, 1280), 32)  # ~0.6 GB of activations per image
    assert 2 <= n < 32
    assert calibration_count(full, (4096, 4096), 32) == 1


# --- TensorRT: profiles over H and W, without TensorRT ------------------------------------------


def _card(spatial: SpatialProfile | None) -> ExportCard:
    return ExportCard.of(
        ModelCard(generator=TINY, test_norm="stats"),
        kind="onnx",
        precision="fp16",
        spatial_profile=spatial,
    )


def test_profile_shapes_are_full_nchw_shapes() -> None:
    assert profile_shapes([1, 4, 16], _card(None)) == (
        (1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32)
    )  # fmt: skip
    shapes = profile_shapes(BatchProfile(1, 4, 16).as_list(), _card(PROFILE))
    assert shapes == ((1, 3, 32, 32), (4, 3, 64, 96), (16, 3, 96, 128))
    assert describe_profile(shapes) == "1x3x32x32 .. 4x3x64x96 .. 16x3x96x128"


def test_polygraphy_profile_passes_our_shapes_to_set_shape() -> None:
    """Our shapes through Polygraphy's own Profile (what build_engine hands CreateConfig):
    ``Profile().add(name, min, opt, max)``, then CreateConfig's ``fill_defaults(network)`` and
    ``to_trt(builder, network)``, which calls TensorRT's ``IOptimizationProfile.set_shape(name,
    min, opt, max)`` once for our one input. Builder and network are stand-ins recording it."""
    from polygraphy.backend.trt import Profile

    calls: list[tuple] = []

    class TrtProfile:
        def set_shape(self, name, lo, opt, hi):  # noqa: ANN001 - TensorRT's signature
            calls.append((name, tuple(lo), tuple(opt), tuple(hi)))

        def set_shape_input(self, *args):  # noqa: ANN002 - never called for image tensors
            raise AssertionError("not a shape tensor")

    inp = SimpleNamespace(name="input", shape=(-1, 3, -1, -1), dtype="float32",
                          is_shape_tensor=False)  # fmt: skip
    network = SimpleNamespace(num_inputs=1, get_input=lambda i: inp)
    builder = SimpleNamespace(create_optimization_profile=TrtProfile)
    shapes = profile_shapes([1, 4, 16], _card(PROFILE))
    profile = Profile().add("input", *shapes)
    profile.fill_defaults(network).to_trt(builder, network)
    assert calls == [("input", (1, 3, 32, 32), (4, 3, 64, 96), (16, 3, 96, 128))]


def test_engine_card_records_both_profiles() -> None:
    card = engine_card(
        _card(PROFILE),
        precision="fp16",
        profile=BatchProfile(1, 4, 16),
        trt_version="10.9.0",
        gpu_name="GPU",
        compute_capability="9.0",
    )
    assert card.batch_profile == [1, 4, 16] and card.spatial_profile == PROFILE
    assert card.to_dict()["spatial_profile"] == PROFILE.to_dict()


def test_engine_limits_from_the_engine_profile() -> None:
    """What the runner reads back (get_tensor_profile_shape(name, 0) -> [min, opt, max])."""
    fixed = engine_limits("m.plan", (-1, 3, 32, 32), [(1, 3, 32, 32), (4, 3, 32, 32),
                                                      (16, 3, 32, 32)], _card(None))  # fmt: skip
    assert (fixed.min_batch, fixed.max_batch, fixed.max_hw) == (1, 16, (32, 32))
    assert fixed.sizes == SizeRange.square(32)
    shapes = profile_shapes([1, 4, 16], _card(PROFILE))
    dyn = engine_limits("m.plan", (-1, 3, -1, -1), shapes, _card(PROFILE))
    assert (dyn.min_batch, dyn.max_batch, dyn.max_hw) == (1, 16, (96, 128))
    assert dyn.sizes == SizeRange((32, 32), (96, 128), 32)
    static = engine_limits("m.plan", (2, 3, 32, 32), None, _card(None))
    assert (static.min_batch, static.max_batch) == (2, 2)
    with pytest.raises(EngineMismatch, match="does not match its card"):
        engine_limits("m.plan", (-1, 3, -1, -1), shapes, _card(None))
    with pytest.raises(EngineMismatch, match="fixed size but its card a spatial profile"):
        engine_limits("m.plan", (-1, 3, 32, 32), None, _card(PROFILE))
    other = profile_shapes([1, 4, 16], _card(SpatialProfile.parse("32:64:64")))
    with pytest.raises(EngineMismatch, match="profile over H and W is 32x32 to 64x64"):
        engine_limits("m.plan", (-1, 3, -1, -1), other, _card(PROFILE))


def test_engine_parity_plan_covers_the_profile() -> None:
    assert engine_parity_plan(_card(None), 1, 16) == [(1, (32, 32)), (3, (32, 32))]
    plan = engine_parity_plan(_card(PROFILE), 1, 16)
    assert plan == [(1, (32, 32)), (3, (32, 32)), (1, (64, 96)), (1, (96, 128))]


def test_onnxruntime_trt_provider_profile_over_h_and_w() -> None:
    opts = trt_profile_options("input", 3, 32, (1, 4, 16), PROFILE.sizes())
    assert opts == {
        "trt_profile_min_shapes": "input:1x3x32x32",
        "trt_profile_opt_shapes": "input:4x3x64x96",
        "trt_profile_max_shapes": "input:16x3x96x128",
    }
    assert trt_profile_options("input", 3, 32, (1, 4, 16))["trt_profile_max_shapes"] == (
        "input:16x3x32x32"
    )


def test_triton_config_of_a_spatial_model(spatial_fp32, tmp_path) -> None:
    from p2p_deploy.export.triton import write_triton_repository

    config = write_triton_repository(spatial_fp32, tmp_path / "repo", max_batch_size=4)
    text = config.read_text()
    assert "dims: [ 3, -1, -1 ]" in text


def test_card_json_of_a_spatial_export_is_plain(spatial_fp32) -> None:
    d = json.loads(spatial_fp32.with_name("model.onnx.json").read_text())
    assert d["spatial_profile"] == {"min": [32, 32], "opt": [64, 96], "max": [96, 128]}
    assert d["format_version"] == 2


def test_runner_on_spatial_export_matches_eager_at_opt(spatial_fp32, tiny_checkpoint) -> None:
    from p2p_deploy.runners.factory import open_runner

    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 96)).astype(np.float32)
    model = prepare_generator(open_model(tiny_checkpoint).generator(), "stats")
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    with open_runner(spatial_fp32, "onnxruntime") as r:
        assert r.size_range == SizeRange((32, 32), (96, 128), 32)
        assert np.abs(r.infer(x) - want).max() <= 1e-4
