"""`p2p eval`: metrics checked against scikit-image, and whole evaluations of tiny generators
(torch and ONNX Runtime fp32/fp16) on aligned and paired datasets made here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from p2p_deploy.bench.eval import EvalOptions, grid_image, resolve_direction, run_eval
from p2p_deploy.bench.metrics import PSNR_CAP_DB, l1, psnr_db, ssim
from p2p_deploy.errors import DataError

# ------------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 40, 57), (1, 11, 11)])
@pytest.mark.parametrize("noise", [0.0, 0.05, 0.5])
def test_ssim_matches_scikit_image(shape: tuple[int, ...], noise: float) -> None:
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image is a dev-only reference")
    rng = np.random.default_rng(int(noise * 100) + shape[2])
    a = rng.uniform(-1, 1, shape)
    a = cv2.GaussianBlur(a.transpose(1, 2, 0), (5, 5), 1.0).reshape(shape[1], shape[2], -1)
    a = a.transpose(2, 0, 1)  # smooth, image-like content
    b = np.clip(a + rng.normal(0, noise, shape), -1, 1) if noise else a.copy()
    ref = skm.structural_similarity(
        a,
        b,
        data_range=2.0,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)
    if noise == 0.0:
        assert ssim(a, b) == pytest.approx(1.0)


def test_l1_and_psnr_on_the_model_range() -> None:
    a = np.zeros((3, 16, 16), np.float32)
    b = np.full_like(a, 0.5)
    assert l1(a, b) == pytest.approx(0.5)
    # MSE 0.25 over a peak-to-peak range of 2: 10 log10(4 / 0.25) = 12.04 dB.
    assert psnr_db(a, b) == pytest.approx(10 * np.log10(16.0))
    assert psnr_db(a, a) == PSNR_CAP_DB
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)))


# ------------------------------------------------------------------------------------- data


def _labels(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` blocky label-map-like (size, size, 3) uint8 BGR images."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        out.append(cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST))
    return out


def _translate(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    from p2p_deploy.runners.factory import open_runner

    with open_runner(model) as runner:
        return list(runner.infer_frames(np.stack(frames)))


def _write_aligned(split_dir: Path, lefts: list[np.ndarray], rights: list[np.ndarray]) -> None:
    split_dir.mkdir(parents=True, exist_ok=True)
    for i, (a, b) in enumerate(zip(lefts, rights, strict=True)):
        cv2.imwrite(str(split_dir / f"{i:03d}.png"), np.concatenate([a, b], axis=1))


@pytest.fixture(scope="module")
def own_output_data(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """A dataset whose photos (A, left) are the tiny generator's own outputs for the label maps
    (B, right): a correct BtoA evaluation of that generator must score almost perfectly."""
    root = tmp_path_factory.mktemp("own")
    labels = _labels(6, 32)
    _write_aligned(root / "test", _translate(tiny_checkpoint, labels), labels)
    return root


def test_eval_scores_the_deployed_model_on_the_right_halves(
    tmp_path: Path, own_output_data: Path, tiny_checkpoint: Path
) -> None:
    seen: list[int] = []
    total: list[int] = []
    res = run_eval(
        # The CPU pinned: on a GPU machine `auto` would run the torch runner in fp16.
        EvalOptions(
            tiny_checkpoint, own_output_data, out=tmp_path / "ev", batch=4, grid=3, device="cpu"
        ),
        on_images=seen.append,
        on_total=total.append,
    )
    assert res.direction == "BtoA" and "card" in res.direction_source
    assert total == [6] and seen == [4, 2]
    m = res.model.mean()
    # Only the uint8 rounding of the stored photos separates output and target.
    assert m["l1"] < 0.5 / 127.5 + 1e-6 and m["psnr_db"] > 48 and m["ssim"] > 0.999
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["count"] == 6 and [r["name"] for r in report["images"]][0] == "000.png"
    for k in ("l1", "psnr_db", "ssim"):
        assert report["mean"][k] == pytest.approx(np.mean([r[k] for r in report["images"]]))
    assert report["fid"] is None and "torch fp32" in report["runner"]
    rows = list(csv.DictReader((tmp_path / "ev" / "eval.csv").open()))
    assert [r["name"] for r in rows] == [r["name"] for r in report["images"]]
    assert float(rows[2]["ssim"]) == pytest.approx(report["images"][2]["ssim"], abs=1e-6)
    best = cv2.imread(str(tmp_path / "ev" / "best.png"))
    # 32 px tiles are enlarged x4 to 128; a header and 3 rows of (caption 18 + tile 128).
    assert best.shape == (18 + 3 * (18 + 128), 3 * 128, 3)

    # The wrong direction feeds the photo as the condition and scores against the label map.
    wrong = run_eval(
        EvalOptions(tiny_checkpoint, own_output_data, out=tmp_path / "w", direction="AtoB")
    )
    assert wrong.model.mean()["l1"] > 20 * m["l1"]


def test_best_and_worst_grids_follow_l1(tmp_path: Path, tiny_checkpoint: Path) -> None:
    labels = _labels(5, 48, seed=3)
    photos = _labels(5, 48, seed=4)
    _write_aligned(tmp_path / "d" / "val", photos, labels)  # 48 px halves: resized to 32
    res = run_eval(
        EvalOptions(tiny_checkpoint, tmp_path / "d", split="val", out=tmp_path / "o", grid=2)
    )
    by_l1 = sorted(res.model.rows, key=lambda r: r["l1"])
    assert [r["name"] for r in res.model.rows] == [f"{i:03d}.png" for i in range(5)]
    best_top = _grid_caption_free(tmp_path / "o" / "best.png", 0)
    worst_top = _grid_caption_free(tmp_path / "o" / "worst.png", 0)
    # The target tile (right third) of the best row is that image's photo, resized to 32.
    best_name, worst_name = by_l1[0]["name"], by_l1[-1]["name"]
    for top, name in ((best_top, best_name), (worst_top, worst_name)):
        photo = photos[int(name[:3])]
        small = cv2.resize(photo, (32, 32), interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (128, 128), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(top[:, 256:], big)


def _grid_caption_free(path: Path, row: int) -> np.ndarray:
    """Row ``row`` of a grid of 128 px tiles, without the header and caption strips."""
    img = cv2.imread(str(path))
    top = 18 + row * (18 + 128) + 18
    return img[top : top + 128]


@pytest.mark.slow
def test_baseline_fp16_against_fp32_onnx(
    tmp_path: Path, own_output_data: Path, tiny_onnx_fp32: Path, tiny_onnx_fp16: Path
) -> None:
    res = run_eval(
        EvalOptions(
            tiny_onnx_fp16,
            own_output_data,
            out=tmp_path / "cmp",
            baseline=tiny_onnx_fp32,
            direction="BtoA",
            device="cpu",
        )
    )
    report = json.loads((tmp_path / "cmp" / "eval.json").read_text())
    base = report["baseline"]
    assert "fp16" in report["runner"] and "fp32" in base["runner"]
    assert [r["name"] for r in base["images"]] == [r["name"] for r in report["images"]]
    for k in ("l1", "psnr_db", "ssim"):
        assert base["difference"][k] == pytest.approx(report["mean"][k] - base["mean"][k])
    # The largest L1 "drop" is the largest increase of L1 over the baseline, per image.
    pairs = list(zip(report["images"], base["images"], strict=True))
    largest = max(pairs, key=lambda p: p[0]["l1"] - p[1]["l1"])
    assert base["largest_drop"]["l1"] == {
        "name": largest[0]["name"],
        "drop": pytest.approx(largest[0]["l1"] - largest[1]["l1"]),
    }
    # fp16 vs fp32 of one generator: close, but not bit-identical.
    assert 30 < base["psnr_vs_baseline_db"]["min"] < PSNR_CAP_DB
    assert abs(base["difference"]["psnr_db"]) < 3
    header = (tmp_path / "cmp" / "eval.csv").read_text().splitlines()[0]
    assert header.endswith("baseline_l1,baseline_psnr_db,baseline_ssim,psnr_vs_baseline_db")
    assert res.comparison() is not None


def test_same_model_as_baseline_has_zero_difference(
    tmp_path: Path, own_output_data: Path, tiny_onnx_fp32: Path
) -> None:
    res = run_eval(
        EvalOptions(tiny_onnx_fp32, own_output_data, out=tmp_path / "s", baseline=tiny_onnx_fp32)
    )
    cmp = res.comparison()
    assert cmp is not None
    assert all(v == 0.0 for v in cmp["difference"].values())
    assert all(d["drop"] == 0.0 for d in cmp["largest_drop"].values())
    assert cmp["psnr_vs_baseline_db"]["min"] == PSNR_CAP_DB
    # The exported model carries its checkpoint's card, direction included.
    assert res.direction == "BtoA" and res.direction_source.endswith("model.onnx card")


def test_paired_layout_limit_and_errors(tmp_path: Path, tiny_checkpoint: Path) -> None:
    root = tmp_path / "paired"
    for sub, imgs in (("A", _labels(4, 32, 1)), ("B", _labels(4, 32, 2))):
        (root / "test" / sub).mkdir(parents=True)
        for i, img in enumerate(imgs):
            cv2.imwrite(str(root / "test" / sub / f"p{i}.png"), img)
    res = run_eval(
        EvalOptions(tiny_checkpoint, root, out=tmp_path / "o", limit=3, save_images=True)
    )
    assert [r["name"] for r in res.model.rows] == ["p0", "p1", "p2"]
    for sub in ("outputs", "targets"):  # for FID with an external tool
        assert sorted(p.name for p in (tmp_path / "o" / sub).iterdir()) == [
            "p0.png",
            "p1.png",
            "p2.png",
        ]
    # The saved target is the A image (BtoA: B is the condition), at the model's size.
    target = cv2.imread(str(tmp_path / "o" / "targets" / "p1.png"))
    assert np.array_equal(target, cv2.imread(str(root / "test" / "A" / "p1.png")))

    with pytest.raises(DataError, match=r"test2: no such split folder \(it has: test\)"):
        run_eval(EvalOptions(tiny_checkpoint, root, split="test2", out=tmp_path / "o"))
    # A pair that cannot be used is a failure listed with its reason (as in `p2p run`), not
    # an abort; with nothing scored the exit code is 1.
    bad = tmp_path / "bad" / "test"
    bad.mkdir(parents=True)
    cv2.imwrite(str(bad / "square.png"), _labels(1, 32)[0])
    res = run_eval(EvalOptions(tiny_checkpoint, tmp_path / "bad", out=tmp_path / "o_bad"))
    assert res.exit_code == 1 and not res.model.rows
    assert "square.png: not two square halves" in res.failures[0]["reason"]
    (bad / "square.png").write_bytes(b"not a png")
    res = run_eval(EvalOptions(tiny_checkpoint, tmp_path / "bad", out=tmp_path / "o_bad"))
    assert "square.png: corrupt or truncated image" in res.failures[0]["reason"]


def test_direction_from_cards(tmp_path: Path, tiny_checkpoint: Path, tiny_onnx_fp32: Path):
    from p2p_deploy.models.opening import open_model

    opts = EvalOptions(tiny_checkpoint, tmp_path)
    ckpt, onnx = open_model(tiny_checkpoint), open_model(tiny_onnx_fp32)
    assert resolve_direction(opts, ckpt) == ("BtoA", f"{tiny_checkpoint} card")
    assert resolve_direction(opts, onnx)[0] == "BtoA"  # the export carries the checkpoint's
    flag = EvalOptions(tiny_checkpoint, tmp_path, direction="AtoB")
    assert resolve_direction(flag, ckpt) == ("AtoB", "--direction")


def test_grid_image_shape() -> None:
    tile = np.zeros((256, 256, 3), np.uint8)
    img = grid_image([(0.1, "x.png", tile, tile, tile)])
    assert img.shape == (18 + 18 + 256, 768, 3)


def test_baseline_of_another_size(tmp_path: Path, own_output_data: Path, tiny_checkpoint: Path):
    from helpers import make_tiny_generator, save_checkpoint

    big = tmp_path / "g64.safetensors"
    g64 = make_tiny_generator(seed=2, image_size=64, n_down=6)
    save_checkpoint(g64, big, {"direction": "BtoA"})
    res = run_eval(EvalOptions(tiny_checkpoint, own_output_data, out=tmp_path / "o", baseline=big))
    assert res.baseline is not None and res.baseline.image_size == 64
    cmp = res.comparison()
    assert cmp is not None and cmp["psnr_vs_baseline_db"] is None  # outputs not comparable
    assert cmp["difference"]["l1"] == pytest.approx(
        res.model.mean()["l1"] - res.baseline.mean()["l1"]
    )
