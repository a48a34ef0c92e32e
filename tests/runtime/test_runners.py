"""Runner conformance: every runner available here against eager torch on the same inputs,
plus the factory, the sidecar-driven refusal of mismatched engines, and GPU-only paths."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from p2p_deploy.errors import EngineMismatch, P2PError
from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8
from p2p_deploy.models.card import ExportCard
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.inference import prepare_generator
from p2p_deploy.models.opening import open_model
from p2p_deploy.runners.factory import open_runner
from p2p_deploy.runners.tensorrt_runner import check_engine_fits

# max |difference| in [-1, 1] units against eager fp32 torch, per runner precision
# (int8 and bf16: the quantized graph on uniform noise, the hardest input for its ranges)
TOLERANCE = {"fp32": 1e-4, "fp16": 3e-2, "bf16": 2e-2, "bf16+fp32": 2e-2, "int8": 0.1}


def _inputs(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32)


def _eager(checkpoint: Path, x: np.ndarray, test_norm: str = "stats") -> np.ndarray:
    model = prepare_generator(open_model(checkpoint).generator(), test_norm)
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")


def _openvino_bf16_label() -> str:
    from p2p_deploy.runners.openvino_runner import cpu_bf16_supported

    # OpenVINO 2026.4 keeps this generator's ConvTranspose layers in f32 under the bf16 hint
    return "bf16+fp32" if cpu_bf16_supported() else "fp32"


@pytest.fixture(
    params=[
        "torch",
        "onnx_fp32",
        "onnx_fp16",
        pytest.param("tensorrt", marks=pytest.mark.trt),
        pytest.param("openvino_fp32", marks=needs_openvino),
        pytest.param("openvino_bf16", marks=needs_openvino),
        pytest.param("openvino_int8", marks=needs_openvino),
    ]
)
def model_path(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, str, dict]:
    """(precision, path, backend, options) of every runner available here; the conformance
    test runs each."""
    name = request.param
    if name == "torch":
        return "fp32", request.getfixturevalue("tiny_checkpoint"), "torch", {}
    if name == "onnx_fp32":
        return "fp32", request.getfixturevalue("tiny_onnx_fp32"), "onnxruntime", {}
    if name == "tensorrt":
        plan = tmp_path_factory.mktemp("trt") / "model.plan"
        fp16, fp32 = (request.getfixturevalue(f"tiny_onnx_{p}") for p in ("fp16", "fp32"))
        return "fp16", _build_tiny_engine(fp16, plan, 4, fp32), "tensorrt", {}
    if name == "openvino_fp32":
        return "fp32", request.getfixturevalue("tiny_onnx_fp32"), "openvino", {}
    if name == "openvino_bf16":
        path = request.getfixturevalue("tiny_onnx_fp32")
        return _openvino_bf16_label(), path, "openvino", {"precision": "bf16"}
    if name == "openvino_int8":
        return "int8", request.getfixturevalue("tiny_onnx_int8"), "openvino", {}
    return "fp16", request.getfixturevalue("tiny_onnx_fp16"), "onnxruntime", {}


@pytest.mark.parametrize("n", [1, 3])
def test_runner_matches_eager_torch(
    model_path: tuple[str, Path, str, dict], tiny_checkpoint: Path, n: int
) -> None:
    precision, path, backend, options = model_path
    x = _inputs(n)
    ref = _eager(tiny_checkpoint, x)
    device = None if path.suffix == ".plan" else "cpu"
    with open_runner(path, backend, device=device, **options) as runner:
        assert runner.backend == backend
        assert runner.precision == precision
        assert runner.image_size == 32
        out = runner.infer(x)
        assert out.dtype == np.float32 and out.shape == x.shape
        assert np.abs(out - ref).max() < TOLERANCE[precision], runner.describe()
        # frames never share statistics: row 0 alone == row 0 inside a batch
        alone = runner.infer(x[:1])
        assert np.abs(alone[0] - out[0]).max() < TOLERANCE[precision]
        frames = ((x.transpose(0, 2, 3, 1)[..., ::-1] + 1) * 127.5 + 0.5).astype(np.uint8)
        out8 = runner.infer_frames(frames)
        assert out8.shape == frames.shape and out8.dtype == np.uint8
        # the runner's own conversion (on its device) == the shared CPU one, within 1 LSB
        ref8 = tensor_to_bgr8(runner.infer(bgr8_to_tensor(frames)))
        assert np.abs(out8.astype(int) - ref8.astype(int)).max() <= 1, runner.describe()


def test_torch_runner_running_norm_and_split(tiny_checkpoint: Path) -> None:
    x = _inputs(5)
    ref = _eager(tiny_checkpoint, x, "running")
    with open_runner(tiny_checkpoint, device="cpu", test_norm="running", max_batch=2) as runner:
        assert "running" in runner.describe()
        assert np.abs(runner.infer(x) - ref).max() < 1e-4
    assert np.abs(_eager(tiny_checkpoint, x, "stats") - ref).max() > 1e-2  # the modes do differ


@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_frames_reach_the_model_in_the_runners_layout(
    tiny_checkpoint: Path, channels_last: bool
) -> None:
    """Frames converted from NHWC uint8 reach the model as NCHW, or channels-last only when
    asked: PyTorch's convolutions follow the input's memory format, so a permuted input would
    run an "NCHW" runner (the bench's eager baseline) channels-last."""
    seen = []
    with open_runner(tiny_checkpoint, "torch", device="cpu", channels_last=channels_last) as r:
        r._model.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        r.infer_frames(np.zeros((2, 32, 32, 3), np.uint8))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert len(seen) == 1 and seen[0].is_contiguous(memory_format=fmt)


def test_onnx_runner_without_sidecar_reads_graph(tiny_onnx_fp16: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(tiny_onnx_fp16.read_bytes())
    with open_runner(bare, device="cpu") as runner:
        assert runner.precision == "fp16"  # from the graph's own weights
        assert runner.image_size == 32  # from the graph's input shape
        assert runner.infer(_inputs(2)).shape == (2, 3, 32, 32)


def test_factory_by_extension_and_errors(
    tiny_checkpoint: Path, tiny_onnx_fp32: Path, tmp_path: Path
) -> None:
    assert open_model(tiny_checkpoint).backend == "torch"
    assert open_model(tiny_checkpoint.parent).backend == "torch"
    assert open_model(tiny_onnx_fp32).backend == "onnxruntime"
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    assert open_model(plan).backend == "tensorrt"
    with pytest.raises(P2PError, match="no such model"):
        open_model(tmp_path / "missing.onnx")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(P2PError, match="unknown model type"):
        open_model(tmp_path / "m.bin")
    with pytest.raises(P2PError, match="cannot run on the torch backend") as exc:
        open_runner(tiny_onnx_fp32, backend="torch")
    # What the file is and which backends read it, in words a user knows.
    assert str(exc.value) == (
        f"{tiny_onnx_fp32}: an ONNX model cannot run on the torch backend; "
        "use --backend auto, onnxruntime or openvino."
    )
    with pytest.raises(P2PError) as exc:
        open_runner(tiny_checkpoint, backend="openvino")
    assert str(exc.value).endswith(
        ": a PyTorch checkpoint cannot run on the openvino backend; use --backend auto or torch."
    )
    # Without TensorRT the missing package is what to fix first (not the missing card).
    has_trt = importlib.util.find_spec("tensorrt") is not None
    match = "no card" if has_trt else r'tensorrt is not installed.*pip install "p2p-deploy\[gpu\]"'
    with pytest.raises(P2PError, match=match):
        open_runner(plan)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        # The one model sanity check reads the graph when the file is opened, before any
        # runtime: every backend refuses a truncated file with the same sentence.
        ("onnxruntime", "not an ONNX model"),
        pytest.param("openvino", "not an ONNX model", marks=needs_openvino),
    ],
)
def test_corrupt_onnx_is_refused_in_one_sentence(
    tiny_onnx_fp32: Path, tmp_path: Path, backend: str, message: str
) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(tiny_onnx_fp32.read_bytes()[:500])
    (tmp_path / "model.onnx.json").write_text(
        (tiny_onnx_fp32.parent / "model.onnx.json").read_text()
    )
    with pytest.raises(EngineMismatch, match=message) as info:
        with open_runner(bad, backend, device="cpu"):
            pass
    assert "\n" not in str(info.value)


def _side(**kw) -> ExportCard:
    base = dict(
        kind="tensorrt",
        precision="fp16",
        io_dtype="float32",
        generator=GeneratorConfig(image_size=32, n_down=5),
        test_norm="stats",
        tensorrt_version="10.3.0",
        gpu_name="NVIDIA L4",
        compute_capability="8.9",
    )
    return ExportCard(**{**base, **kw})


def test_engine_mismatch_names_what_differs() -> None:
    p = Path("m.plan")
    check_engine_fits(p, _side(), "10.3.0.26", ("NVIDIA L4", "8.9"))
    with pytest.raises(
        EngineMismatch, match=r"TensorRT 10\.3\.0 .* has TensorRT 10\.8\.0.*p2p export"
    ):
        check_engine_fits(p, _side(), "10.8.0", ("NVIDIA L4", "8.9"))
    with pytest.raises(
        EngineMismatch, match=r"NVIDIA L4 \(compute capability 8\.9\).*H100 \(9\.0\)"
    ):
        check_engine_fits(p, _side(), "10.3.0", ("H100", "9.0"))
    check_engine_fits(
        p, _side(version_compatible=True, hardware_compatible=True), "10.8.0", ("H100", "9.0")
    )


@pytest.mark.gpu
def test_torch_runner_fp16_cuda_graphs_match(tiny_checkpoint: Path) -> None:
    x = _inputs(3)
    ref = _eager(tiny_checkpoint, x)
    with open_runner(tiny_checkpoint, device="cuda", cuda_graphs=True) as runner:
        assert runner.precision == "fp16" and runner.channels_last
        for _ in range(2):  # capture, then replay
            assert np.abs(runner.infer(x) - ref).max() < TOLERANCE["fp16"]


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("pycuda") is None, reason="pycuda is not installed")
def test_torch_and_pycuda_buffers_agree() -> None:
    from p2p_deploy.runners.trt_memory import PycudaMemory, TorchCudaMemory

    data = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    results = []
    for mem in (TorchCudaMemory(), PycudaMemory()):
        with mem.current():
            host_out = _round_trip(mem, data)
        mem.close()
        results.append(host_out)
    assert np.array_equal(results[0], data) and np.array_equal(results[1], data)


def _round_trip(mem, data: np.ndarray) -> np.ndarray:
    """data -> pinned host -> device -> pinned host on ``mem``'s stream."""
    host_in = mem.host_empty(data.shape, np.float32)
    host_out = mem.host_empty(data.shape, np.float32)
    host_in[:] = data
    dev = mem.device_empty(data.nbytes)
    mem.to_device(dev, host_in)
    mem.to_host(host_out, dev)
    mem.synchronize()
    return host_out.copy()


def _build_tiny_engine(onnx_path: Path, plan: Path, max_batch: int, reference: Path) -> Path:
    """An engine from the fp16 ONNX (profile batch 1..max_batch) + its sidecar, built by the
    project's own builder (Polygraphy, precision verification, parity against ``reference``,
    the fp32 ONNX)."""
    from p2p_deploy.export.tensorrt_build import BatchProfile, build_engine

    profile = BatchProfile(1, max_batch, max_batch)
    build_engine(onnx_path, plan, profile=profile, reference_onnx=reference)
    return plan


@pytest.mark.trt
def test_tensorrt_runner_matches_eager(
    tiny_checkpoint: Path, tiny_onnx_fp16: Path, tiny_onnx_fp32: Path, tmp_path: Path
) -> None:
    plan = _build_tiny_engine(tiny_onnx_fp16, tmp_path / "model.plan", 4, tiny_onnx_fp32)
    x = _inputs(6)  # larger than the profile: split
    ref = _eager(tiny_checkpoint, x)
    for memory in ("torch", "pycuda") if importlib.util.find_spec("pycuda") else ("torch",):
        with open_runner(plan, memory=memory) as runner:
            assert np.abs(runner.infer(x) - ref).max() < TOLERANCE["fp16"]
            assert np.abs(runner.infer(x[:1]) - ref[:1]).max() < TOLERANCE["fp16"]
            frames = ((x.transpose(0, 2, 3, 1)[..., ::-1] + 1) * 127.5 + 0.5).astype(np.uint8)
            via_gpu = runner.infer_frames(frames).astype(int)  # conversion on the GPU (torch)
            from p2p_deploy.imaging import bgr8_to_tensor, tensor_to_bgr8

            via_cpu = tensor_to_bgr8(runner.infer(bgr8_to_tensor(frames))).astype(int)
            assert np.abs(via_gpu - via_cpu).max() <= 1


@pytest.mark.trt
def test_tensorrt_cuda_graphs_per_batch_size(
    tiny_checkpoint: Path, tiny_onnx_fp16: Path, tiny_onnx_fp32: Path, tmp_path: Path
) -> None:
    """Graphs captured per batch size on their own contexts: a 6-image batch runs as 4 + 2,
    then 4 and 2 again (replays), all matching eager torch; the bench's device step too."""
    plan = _build_tiny_engine(tiny_onnx_fp16, tmp_path / "model.plan", 4, tiny_onnx_fp32)
    x = _inputs(6)
    ref = _eager(tiny_checkpoint, x)
    with open_runner(plan, memory="torch", cuda_graphs=True) as runner:
        for _ in range(2):
            assert np.abs(runner.infer(x) - ref).max() < TOLERANCE["fp16"]
            assert np.abs(runner.infer(x[:2]) - ref[:2]).max() < TOLERANCE["fp16"]
        step = runner.device_step(x[:4])
        assert step is not None
        step.run()
        step.stream.synchronize()
