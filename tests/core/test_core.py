"""Core pieces: configs, image/tensor conventions, atomic writes, sidecars, test-norm modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_tiny_generator

from p2p_deploy.atomic import atomic_path, write_json
from p2p_deploy.errors import P2PError
from p2p_deploy.imaging import (
    bgr8_to_tensor,
    psnr,
    psnr_from_mse,
    tensor_to_bgr8,
    to_bgr8,
    torch_bgr8_to_tensor,
    torch_tensor_to_bgr8,
)
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.config import GeneratorConfig, downsamplings_for
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.layout import card_path


def test_downsamplings_follow_image_size():
    assert [downsamplings_for(s) for s in (256, 128, 64, 32)] == [8, 7, 6, 5]
    with pytest.raises(P2PError, match="power of two"):
        downsamplings_for(200)


def test_config_rejects_bad_values():
    with pytest.raises(P2PError, match="norm"):
        GeneratorConfig(norm="group")
    with pytest.raises(P2PError, match="at least 5"):
        GeneratorConfig(image_size=16)
    with pytest.raises(P2PError, match="unknown generator config keys"):
        GeneratorConfig.from_dict({"ngf": 8, "image_size": 32, "colour": "red"})
    cfg = GeneratorConfig(ngf=8, image_size=64, n_down=5)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg


def test_image_tensor_roundtrip_is_exact_for_uint8():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)
    t = bgr8_to_tensor(frames)
    assert t.shape == (2, 3, 5, 7) and t.dtype == np.float32
    assert t.min() >= -1.0 and t.max() <= 1.0
    # Channel 0 of the tensor is red = channel 2 of the BGR frame.
    np.testing.assert_allclose(t[:, 0], frames[..., 2] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(tensor_to_bgr8(t), frames)
    # The torch versions agree with numpy.
    tt = torch_bgr8_to_tensor(torch.from_numpy(frames))
    np.testing.assert_allclose(tt.numpy(), t, atol=1e-6)
    np.testing.assert_array_equal(torch_tensor_to_bgr8(tt).numpy(), frames)


def test_to_bgr8_converts_gray_rgba_and_16bit():
    gray = np.full((4, 4), 200, np.uint8)
    assert to_bgr8(gray).shape == (4, 4, 3)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 2] = 255
    out = to_bgr8(rgba)
    assert out.shape == (4, 4, 3) and out[0, 0, 2] == 255
    deep = np.full((4, 4, 3), 65535, np.uint16)
    assert to_bgr8(deep).dtype == np.uint8 and to_bgr8(deep).max() == 255


def test_psnr():
    a = np.zeros((3, 8, 8), np.float32)
    assert psnr(a, a) == float("inf")
    b = a + 0.02
    assert psnr(a, b) == pytest.approx(10 * np.log10(4 / 0.02**2), rel=1e-4)


def test_psnr_one_definition_for_every_caller(recwarn):
    """The guarantees each caller relies on: identical -> inf (export parity, bench accuracy's
    null) or the cap (bench eval's JSON), NaN stays NaN (parity's NaN-aware min), inf -> -inf
    (the worst figure), and no numpy warning on the way."""
    a = np.zeros((3, 8, 8), np.float32)
    assert psnr(a, a, cap_db=100.0) == 100.0
    assert psnr(a, a + 1e-9, cap_db=100.0) == 100.0  # above the cap: the cap
    assert psnr(a, a + 0.5, cap_db=100.0) == pytest.approx(10 * np.log10(16.0))
    nan, inf = a.copy(), a.copy()
    nan[0, 0, 0], inf[0, 0, 0] = np.nan, np.inf
    assert np.isnan(psnr(nan, a)) and np.isnan(psnr(nan, a, cap_db=100.0))
    assert psnr(inf, a) == -np.inf and psnr(inf, a, cap_db=100.0) == -np.inf
    assert psnr_from_mse(0.0) == np.inf and psnr_from_mse(0.25) == pytest.approx(12.0412, 1e-4)
    assert psnr_from_mse(1.0, data_range=1.0) == 0.0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    write_json(final, {"a": 1})
    assert json.loads(final.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_sidecar_roundtrip_and_errors(tmp_path, tiny_config):
    model = tmp_path / "model.onnx"
    sc = ExportCard(
        kind="onnx",
        precision="fp16",
        io_dtype="float32",
        generator=tiny_config,
        test_norm="stats",
        input_shape=[-1, 3, 32, 32],
        output_shape=[-1, 3, 32, 32],
        opset=17,
    )
    assert sc.write(model) == card_path(model) == tmp_path / "model.onnx.json"
    back = read_export_card(model)
    assert back == sc and back.generator == tiny_config and back.image_size == 32
    with pytest.raises(P2PError, match="no card"):
        read_export_card(tmp_path / "other.onnx")
    (tmp_path / "bad.onnx.json").write_text("{not json")
    with pytest.raises(P2PError, match="not JSON"):
        read_export_card(tmp_path / "bad.onnx")


def test_stats_mode_never_mixes_frames_and_differs_from_running():
    g = make_tiny_generator()
    stats = prepare_generator(g, "stats")
    running = prepare_generator(g, "running")
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        batched = stats(x)
        singles = torch.cat([stats(x[i : i + 1]) for i in range(3)])
        # Per-image statistics: a frame's output does not depend on its batch-mates.
        torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)
        # With batch size 1, train-mode batch norm is the paper's test-time behaviour.
        g_train = make_tiny_generator()
        for m in g_train.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        g_train.train()
        torch.testing.assert_close(g_train(x[:1]), singles[:1], atol=1e-5, rtol=1e-5)
        assert (running(x) - batched).abs().max() > 1e-2
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in stats.modules())
    assert g.training  # the source module is left untouched


def test_generator_flops_match_the_layers_that_run():
    from p2p_deploy.models import UNetGenerator
    from p2p_deploy.models.flops import generator_flops

    assert round(generator_flops(GeneratorConfig()) / 1e9, 1) == 12.1
    cfg = GeneratorConfig(ngf=8, image_size=64, n_down=5)
    model = UNetGenerator(cfg)
    counted = 0

    def hook(m, inputs, out):
        nonlocal counted
        if isinstance(m, torch.nn.ConvTranspose2d):
            counted += 2 * inputs[0].numel() * m.out_channels * 16
        elif isinstance(m, torch.nn.Conv2d):
            counted += 2 * out.numel() * m.in_channels * 16

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))
    for h in handles:
        h.remove()
    assert generator_flops(cfg) == counted


def test_run_folder_with_an_interrupted_checkpoint_swap_still_resolves(tmp_path):
    """A save killed between its two renames leaves only checkpoints/.latest.old."""
    from helpers import save_checkpoint

    from p2p_deploy.models.opening import open_model

    old = tmp_path / "checkpoints" / ".latest.old" / "generator.safetensors"
    save_checkpoint(make_tiny_generator(), old, {"step": 7})
    assert open_model(tmp_path).card.training.step == 7


def test_jpeg_truncation_is_detected_from_the_bytes():
    import cv2

    from p2p_deploy.jpeg import jpeg_data_truncated

    good = cv2.imencode(".jpg", np.full((48, 48, 3), 90, np.uint8))[1].tobytes()
    assert not jpeg_data_truncated(good)
    assert not jpeg_data_truncated(good + b"appended trailer")
    assert jpeg_data_truncated(good[:-2])  # end marker gone
    assert jpeg_data_truncated(good[:20])  # cut inside the headers
    assert not jpeg_data_truncated(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())


def test_stats_mode_swaps_sync_batchnorm_too():
    # A generator trained with several GPUs has SyncBatchNorm layers (converted in place; the
    # conversion runs on CPU, only their train-mode forward needs CUDA).
    g = make_tiny_generator()
    sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(make_tiny_generator())
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in sync.modules())
    stats, sync_stats = prepare_generator(g, "stats"), prepare_generator(sync, "stats")
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in sync_stats.modules()
    )
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(sync_stats(x), stats(x))


def test_atomic_path_keeps_a_file_written_by_another_library(tmp_path):
    # atomic_path fsyncs the temporary file itself before the rename (np.save never does).
    final = tmp_path / "a.npy"
    with atomic_path(final) as tmp:
        np.save(tmp, np.arange(5))
    np.testing.assert_array_equal(np.load(final), np.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
