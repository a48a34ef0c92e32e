"""`--resize native`: frames at their own resolution, padded to the stride, tiled beyond the
model's largest size; through every runner and `p2p run` end to end.

Must-show of issue 21: a folder of non-square images of several sizes and a 1280x720 video run
natively; the outputs have exactly the input sizes and match eager torch run at the same padded
size (fp32 ONNX within 1e-4); tiled outputs stay within a stated tolerance of untiled ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from runtime.media_files import random_bgr, write_video

from p2p_deploy.cli import main
from p2p_deploy.errors import P2PError
from p2p_deploy.export.parity import random_images
from p2p_deploy.imaging import bgr8_to_tensor, psnr, tensor_to_bgr8
from p2p_deploy.media.resize import fit, fit_native, restore, source_view
from p2p_deploy.media.tiles import blend, cut, plan_tiles
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.opening import open_model
from p2p_deploy.models.spatial import SizeRange, SpatialProfile
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.run import native_runner
from p2p_deploy.runners.base import BatchError
from p2p_deploy.runners.factory import open_runner
from p2p_deploy.runners.tiling import DEFAULT_MAX_TILE, TilingRunner, tile_limit

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
# Several non-square sizes, one of them 720p (run at 736x1280: the tiny model's stride is 32).
SIZES = [(50, 70), (100, 33), (130, 260), (720, 1280)]
# Tiled vs untiled, tiles of at least half the frame per side (see test_tiles_stay_close...):
# per-image statistics (``stats``, the paper) make each tile normalise with its own, so the
# bar is PSNR >= 38 dB; with running statistics only the tiles' smaller context differs.
TILED_PSNR_STATS = 38.0
TILED_PSNR_RUNNING = 80.0


def _eager(checkpoint: Path, x: np.ndarray, test_norm: str = "stats") -> np.ndarray:
    model = prepare_generator(open_model(checkpoint).generator(), test_norm)
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _expected_frame(checkpoint: Path, frame: np.ndarray, stride: int = 32) -> np.ndarray:
    """What `--resize native` must write for ``frame``: eager torch at the reflect-padded size,
    the padding cropped off (uint8 BGR)."""
    padded, geo = fit_native(frame, stride)
    y = tensor_to_bgr8(_eager(checkpoint, bgr8_to_tensor(padded)))[0]
    return restore(y, geo, keep_size=True)


@pytest.fixture(scope="module")
def spatial_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """fp32 ONNX of the tiny generator for any size from 32x32 to 736x1280 (720p padded)."""
    from p2p_deploy.export.onnx_export import export_onnx

    m = open_model(tiny_checkpoint)
    path = tmp_path_factory.mktemp("spatial") / "model.onnx"
    profile = SpatialProfile((32, 32), (96, 128), (736, 1280))
    export_onnx(m.generator(), path, card=m.card, spatial=profile)
    return path


# --- padding, tiles -----------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(30, 50), (7, 100), (32, 64), (1, 1), (720, 1280)])
def test_native_fit_pads_by_reflection_and_restores_exactly(h: int, w: int) -> None:
    frame = random_bgr(h, w, 0)
    padded, geo = fit(frame, 32, "native")
    ph, pw = padded.shape[:2]
    assert ph % 32 == 0 and pw % 32 == 0 and ph - h < 32 and pw - w < 32 or (h, w) == (1, 1)
    assert np.array_equal(restore(padded, geo, keep_size=True), frame)
    assert np.array_equal(restore(padded, geo, keep_size=False), frame)
    assert np.array_equal(source_view(frame, padded, geo, keep_size=True), frame)
    x0, y0, x1, y1 = geo.model_box
    if y0 > 0 and h > 1:  # reflection without repeating the edge row (BORDER_REFLECT_101)
        assert np.array_equal(padded[y0 - 1, x0:x1], frame[1])
    big, geo2 = fit_native(frame, 32, minimum=(64, 96))
    assert big.shape[0] >= 64 and big.shape[1] >= 96 and geo2.padded == big.shape[:2]


@pytest.mark.parametrize(
    ("size", "limit"), [((96, 160), (64, 64)), ((256, 96), (96, 96)), ((64, 64), (64, 64))]
)
def test_tiles_cover_the_frame_and_blend_back_exactly(size, limit) -> None:
    plan = plan_tiles(size, limit)
    th, tw = plan.tile
    assert th <= limit[0] and tw <= limit[1]
    cover = np.zeros(size)
    for (y, x), wgt in zip(plan.origins, plan.weights(), strict=True):
        cover[y : y + th, x : x + tw] += wgt
        assert wgt.min() > 0  # never a zero weight inside a tile
    assert np.allclose(cover, 1.0, atol=1e-6)  # feathered weights sum to one everywhere
    if len(plan.rows) > 1:  # neighbours overlap by at least a quarter of a tile
        assert all(b - a <= th - th // 4 for a, b in zip(plan.rows, plan.rows[1:], strict=False))
    frame = random_bgr(*size, 1)
    assert np.array_equal(blend(cut(frame, plan, True), plan, True), frame)  # uint8 frames
    x = random_images(1, 3, size, 2)[0]
    assert np.abs(blend(cut(x, plan, False), plan, False) - x).max() < 1e-6  # (C, H, W)


@pytest.mark.parametrize(("test_norm", "bar"), [("stats", TILED_PSNR_STATS),
                                                 ("running", TILED_PSNR_RUNNING)])  # fmt: skip
def test_tiles_stay_close_to_the_untiled_output(tiny_checkpoint, test_norm, bar) -> None:
    """The stated tolerance: a 128x192 frame in 96x128 tiles against the whole frame."""
    x = random_images(2, 3, (128, 192), 0)
    with open_runner(tiny_checkpoint, "torch", device="cpu", test_norm=test_norm) as r:
        whole = r.infer(x)
        tiled = TilingRunner(r, (96, 128), tile_batch=3).infer(x)
        assert tiled.shape == whole.shape
        assert psnr(tiled, whole) >= bar
        # frames through the same path: the blended uint8 output within the same bar
        frames = tensor_to_bgr8(x)
        t8 = TilingRunner(r, (96, 128)).infer_frames(frames)
        w8 = r.infer_frames(frames)
        assert t8.shape == frames.shape
        assert psnr(t8.astype(np.float32) / 127.5 - 1, w8.astype(np.float32) / 127.5 - 1) >= min(
            bar, 45.0
        )


def test_tile_limit_rules() -> None:
    profile = SizeRange((64, 64), (256, 512), 32)
    assert tile_limit(profile, "auto") == (256, 512)
    assert tile_limit(profile, "off") is None
    assert tile_limit(profile, "200x300") == (192, 288)  # rounded down to the stride
    assert tile_limit(SizeRange((32, 32), None, 32), "auto") == DEFAULT_MAX_TILE
    assert tile_limit(SizeRange((256, 256), None, 256), "auto") == (2048, 2048)
    with pytest.raises(P2PError, match="larger than model.plan takes") as info:
        tile_limit(profile, "1024", "model.plan")
    assert "\n" not in str(info.value) and "256x512" in str(info.value)
    with pytest.raises(P2PError, match="below the smallest size"):
        tile_limit(profile, "32")
    # Below one stride: refused too, not rounded up to the stride (a fixed 128 px square).
    with pytest.raises(P2PError, match=r"--max-tile 64: below the smallest size .*128x128"):
        tile_limit(SizeRange((128, 128), (128, 128), 128), "64")
    with pytest.raises(P2PError, match="below the smallest size"):
        tile_limit(SizeRange((32, 32), None, 32), "16x64")
    with pytest.raises(P2PError, match="HxW"):
        tile_limit(profile, "big")


# --- every runner takes the native path ---------------------------------------------------


def _backends() -> list:
    out = ["torch", "onnxruntime"]
    if HAS_OPENVINO:
        out.append("openvino")
    return out


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.slow
def test_every_cpu_runner_runs_non_square_sizes_at_fp32_parity(
    backend, tiny_checkpoint, spatial_onnx
) -> None:
    """The base contract: any H, W multiple of the stride within the model's limits; fp32
    within 1e-4 of eager torch at every size (one size per call, batches of one size)."""
    model = tiny_checkpoint if backend == "torch" else spatial_onnx
    with open_runner(model, backend, device="cpu") as r:
        for i, hw in enumerate([(32, 96), (96, 64), (736, 1280)]):
            x = random_images(2 if i == 0 else 1, 3, hw, i)
            y = r.infer(x)
            assert y.shape == x.shape
            assert np.abs(y - _eager(tiny_checkpoint, x)).max() <= 1e-4
            assert r.infer_frames(tensor_to_bgr8(x)).shape == (len(x), *hw, 3)
        with pytest.raises(BatchError, match="multiples of 32"):
            r.infer(random_images(1, 3, (48, 64), 0))  # not a multiple of the stride


def test_a_fixed_square_export_refuses_other_sizes_and_tiles_natively(tiny_onnx_fp32) -> None:
    with open_runner(tiny_onnx_fp32, "onnxruntime") as r:
        assert r.size_range == SizeRange.square(32)
        with pytest.raises(BatchError, match=r"shape \(1, 3, 64, 64\)"):
            r.infer(random_images(1, 3, 64, 0))
        tiled = native_runner(r, RunOptions(resize="native"))
        assert isinstance(tiled, TilingRunner) and tiled.limit == (32, 32)
        assert tiled.infer(random_images(1, 3, (64, 96), 0)).shape == (1, 3, 64, 96)


def test_openvino_reshapes_per_frame_size(spatial_onnx) -> None:
    if not HAS_OPENVINO:
        pytest.skip("openvino is not installed")
    with open_runner(spatial_onnx, "openvino") as r:
        r.infer(random_images(1, 3, (64, 96), 0))
        r.infer(random_images(2, 3, (96, 32), 1))
        assert {(1, 64, 96), (2, 96, 32)} <= set(r._compiled)  # (batch, height, width)


@pytest.mark.slow
def test_square_modes_refuse_a_model_without_its_square(tiny_checkpoint, tmp_path) -> None:
    """A spatial export whose profile leaves out S x S cannot run --resize stretch: said in one
    line before any work, naming --resize native."""
    from p2p_deploy.export.onnx_export import export_onnx

    ck = open_model(tiny_checkpoint)
    path = tmp_path / "model.onnx"
    export_onnx(ck.generator(), path, card=ck.card, spatial=SpatialProfile.parse("64:64:128"))
    with open_runner(path, "onnxruntime") as r:
        with pytest.raises(P2PError, match="does not take 32x32 frames.*--resize native"):
            native_runner(r, RunOptions(resize="stretch"))
        assert isinstance(native_runner(r, RunOptions(resize="native")), TilingRunner)


# --- p2p run --resize native, end to end -----------------------------------------------------


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args, "--no-progress"])
    return code, capsys.readouterr().err


def test_folder_and_720p_video_run_natively_and_match_eager(
    capsys, tmp_path, tiny_checkpoint, spatial_onnx
) -> None:
    """Must-show: non-square images of several sizes and a 1280x720 video through `p2p run
    --resize native` with the fp32 ONNX: outputs of exactly the input sizes, matching eager
    torch at the same padded size (images: lossless PNG, within 1 LSB of the eager frame, whose
    float output the ONNX matches within 1e-4: see the runner test above; the video: through
    its codec)."""
    src = tmp_path / "in"
    src.mkdir()
    frames = {}
    for i, (h, w) in enumerate(SIZES):
        img = cv2.GaussianBlur(random_bgr(h, w, i), (5, 5), 0)
        cv2.imwrite(str(src / f"img_{h}x{w}.png"), img)
        frames[f"img_{h}x{w}.png"] = img
    write_video(src / "clip.mp4", 3, size=(1280, 720), codec="mp4v")
    out = tmp_path / "out"
    code, err = _run(capsys, str(src), "-e", str(spatial_onnx), "-o", str(out),
                     "--resize", "native", "--backend", "onnxruntime")  # fmt: skip
    assert code == 0, err
    assert "tiles up to 736x1280" in err
    for name, img in frames.items():
        got = cv2.imread(str(out / name))
        assert got.shape == img.shape  # exactly the input's size
        want = _expected_frame(tiny_checkpoint, img)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    cap_in = cv2.VideoCapture(str(src / "clip.mp4"))
    cap_out = cv2.VideoCapture(str(out / "clip.mp4"))
    n = 0
    while True:
        ok_in, f_in = cap_in.read()
        ok_out, f_out = cap_out.read()
        if not ok_in:
            assert not ok_out
            break
        assert ok_out and f_out.shape == (720, 1280, 3)
        want = _expected_frame(tiny_checkpoint, f_in)
        # the model's output went through mp4v: the codec's loss, not the model's
        assert psnr(f_out.astype(np.float32) / 127.5 - 1, want.astype(np.float32) / 127.5 - 1) > 25
        n += 1
    assert n == 3


@pytest.mark.slow
def test_frames_beyond_the_profile_are_tiled_or_refused_in_one_line(
    capsys, tmp_path, tiny_checkpoint
) -> None:
    """A fixed-square 32 px model: a larger frame is tiled (default), refused per input with
    --max-tile off, and a --max-tile beyond the model is one line before any work."""
    from p2p_deploy.export.onnx_export import export_onnx

    ck = open_model(tiny_checkpoint)
    small = tmp_path / "m" / "model.onnx"
    export_onnx(ck.generator(), small, card=ck.card, spatial=SpatialProfile.parse("32:64:64x96"))
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "big.png"), random_bgr(100, 150, 0))
    cv2.imwrite(str(src / "small.png"), random_bgr(40, 60, 1))
    code, err = _run(capsys, str(src), "-e", str(small), "-o", str(tmp_path / "o1"),
                     "--resize", "native", "--backend", "onnxruntime")  # fmt: skip
    assert code == 0 and "tiles up to 64x96" in err
    assert cv2.imread(str(tmp_path / "o1" / "big.png")).shape == (100, 150, 3)
    code, err = _run(capsys, str(src), "-e", str(small), "-o", str(tmp_path / "o2"),
                     "--resize", "native", "--max-tile", "off")  # fmt: skip
    assert code == 2
    line = next(x for x in err.splitlines() if x.startswith("failed:"))
    assert "big.png: 100x150 (run at 128x160) is beyond the largest size" in line
    assert (tmp_path / "o2" / "small.png").is_file()
    code, err = _run(capsys, str(src), "-e", str(small), "-o", str(tmp_path / "o3"),
                     "--resize", "native", "--max-tile", "128x128")  # fmt: skip
    assert code == 1 and "--max-tile 128x128: larger than model.onnx takes" in err
    assert not (tmp_path / "o3" / "big.png").exists()
    code, err = _run(capsys, str(src), "-e", str(small), "--max-tile", "64")
    assert code == 64 and "--max-tile applies to --resize native" in err


def test_torch_runner_tiles_only_beyond_its_max_tile(capsys, tmp_path, tiny_checkpoint) -> None:
    src = tmp_path / "in"
    src.mkdir()
    img = cv2.GaussianBlur(random_bgr(90, 200, 3), (5, 5), 0)
    cv2.imwrite(str(src / "a.png"), img)
    code, err = _run(capsys, str(src), "-e", str(tiny_checkpoint), "-o", str(tmp_path / "whole"),
                     "--resize", "native")  # fmt: skip
    assert code == 0 and "tiles up to 2048x2048" in err
    whole = cv2.imread(str(tmp_path / "whole" / "a.png"))
    assert np.abs(whole.astype(int) - _expected_frame(tiny_checkpoint, img).astype(int)).max() <= 1
    code, err = _run(capsys, str(src), "-e", str(tiny_checkpoint), "-o", str(tmp_path / "tiled"),
                     "--resize", "native", "--max-tile", "96x160", "--batch", "2")  # fmt: skip
    assert code == 0 and "tiles up to 96x160" in err
    tiled = cv2.imread(str(tmp_path / "tiled" / "a.png"))
    assert tiled.shape == img.shape
    assert psnr(tiled.astype(np.float32) / 127.5 - 1, whole.astype(np.float32) / 127.5 - 1) > 30


def test_warmup_through_the_tiling_view(tiny_checkpoint, tiny_onnx_fp32) -> None:
    """`p2p run` warms the runner it hands the pipeline (a TilingRunner with --resize native)."""
    for model in (tiny_checkpoint, tiny_onnx_fp32):
        with open_runner(model, device="cpu") as r:
            tiled = native_runner(r, RunOptions(resize="native"))
            assert tiled.warmup() >= 0 and tiled.warmup(size=(64, 64)) >= 0
