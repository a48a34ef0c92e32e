"""TensorRT build: everything around the engine without TensorRT; the real build marked ``trt``."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_deploy.errors import MissingDependency, P2PError
from p2p_deploy.export.tensorrt_build import (
    BatchProfile,
    NoTensorRTGpu,
    attach_timing_cache,
    build_engine,
    create_builder,
    engine_card,
    parse_batch_profile,
    plan_name,
    read_timing_cache,
    trt_features,
    write_plan,
    write_timing_cache,
)
from p2p_deploy.models.card import ExportCard, read_export_card
from p2p_deploy.models.layout import card_path

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_parse_batch_profile():
    assert parse_batch_profile("1:4:16") == BatchProfile(1, 4, 16)
    assert parse_batch_profile(" 8 ") == BatchProfile(8, 8, 8)
    assert parse_batch_profile("2:2:2").shapes(3, 32) == ((2, 3, 32, 32),) * 3


@pytest.mark.parametrize("bad", ["", "0:1:2", "4:2:8", "1:4", "a:b:c", "1:4:16:32", "-1:2:3"])
def test_parse_batch_profile_rejects(bad):
    with pytest.raises(P2PError, match=r"--batch .*MIN:OPT:MAX"):
        parse_batch_profile(bad)


@given(st.integers(1, 64), st.integers(0, 64), st.integers(0, 64))
def test_parse_batch_profile_roundtrip(a, da, db):
    prof = parse_batch_profile(f"{a}:{a + da}:{a + da + db}")
    assert prof.as_list() == [a, a + da, a + da + db]


def test_version_check(caplog):
    v10 = trt_features("10.3.0.26")
    assert (v10.major, v10.minor, v10.version) == (10, 3, "10.3.0.26")
    assert trt_features("11.4.0").major == 11
    with pytest.raises(P2PError, match=r"TensorRT 8\.6\.1 is too old: .*10\.x or 11\.x"):
        trt_features("8.6.1")
    with pytest.raises(P2PError, match="cannot read the TensorRT version"):
        trt_features("unknown")
    trt_features("12.0.0")
    assert "newer than the 10.x/11.x" in caplog.text


def test_engine_sidecar(tiny_onnx_fp16, tmp_path):
    onnx_side = read_export_card(tiny_onnx_fp16)
    side = engine_card(
        onnx_side,
        precision="fp16",
        profile=BatchProfile(1, 4, 16),
        trt_version="10.3.0",
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
        hardware_compatible=True,
    )
    path = side.write(tmp_path / plan_name("fp16"))
    d = json.loads(path.read_text())
    assert path.name == "model_fp16.plan.json"
    assert d["kind"] == "tensorrt" and d["precision"] == "fp16" and d["batch_profile"] == [1, 4, 16]
    assert d["tensorrt_version"] == "10.3.0" and d["compute_capability"] == "9.0"
    assert d["gpu_name"] == "NVIDIA H100" and d["hardware_compatible"] is True
    assert d["checkpoint_sha256"] == onnx_side.checkpoint_sha256
    assert d["generator"] == onnx_side.generator.to_dict() and d["test_norm"] == "stats"
    assert read_export_card(tmp_path / "model_fp16.plan").batch_profile == [1, 4, 16]


@pytest.mark.skipif(HAS_TRT, reason="checks the message where tensorrt is absent")
def test_build_without_tensorrt_names_the_extra(tiny_onnx_fp16, tmp_path):
    with pytest.raises(
        MissingDependency, match=r'tensorrt is not installed .*pip install "p2p-deploy\[gpu\]"'
    ):
        build_engine(tiny_onnx_fp16, tmp_path / "m.plan", profile=BatchProfile(1, 2, 4))
    assert not (tmp_path / "m.plan").exists()


@pytest.mark.trt
def test_real_fp16_and_fp32_engines(tiny_onnx_fp16, tiny_onnx_fp32, tmp_path):
    cache = tmp_path / "timing.cache"
    side16 = build_engine(
        tiny_onnx_fp16,
        tmp_path / "model_fp16.plan",
        profile=BatchProfile(1, 2, 4),
        workspace_gib=1.0,
        timing_cache=cache,
        reference_onnx=tiny_onnx_fp32,
    )
    assert side16.precision == "fp16" and side16.batch_profile == [1, 2, 4]
    evidence = side16.extra["precision_evidence"]
    assert set(evidence["network"]["compute_layers"]) == {"fp16"}  # every conv in fp16
    assert evidence["io"] == {"input": "fp32", "output": "fp32"}
    # read with a context attached: the inspector names dtypes, not "N/A due to dynamic shapes"
    assert evidence["inspector"]["layout"] in ("10.x Format/Datatype", "11.x Datatype+Format")
    assert (
        side16.extra["engine_parity"]["passed"]
        and side16.extra["engine_parity"]["min_psnr_db"] >= 40
    )
    assert side16.tensorrt_version and side16.compute_capability
    assert cache.is_file() and cache.stat().st_size > 0
    side32 = build_engine(
        tiny_onnx_fp32,
        tmp_path / "model_fp32.plan",
        profile=BatchProfile(1, 2, 4),
        timing_cache=cache,
    )  # reuses the cache written above
    assert side32.precision == "fp32"
    assert side32.extra["engine_parity"]["max_abs_err"] <= 1e-3
    assert (tmp_path / "model_fp16.plan").stat().st_size > 0


@pytest.mark.trt
def test_real_build_shows_parser_errors(tmp_path, tiny_onnx_fp32):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    read_export_card(tiny_onnx_fp32).write(bad)
    with pytest.raises(P2PError, match=r"bad\.onnx: TensorRT's ONNX parser rejected it: "):
        build_engine(bad, tmp_path / "bad.plan", profile=BatchProfile(1, 1, 1))
    assert not (tmp_path / "bad.plan").exists()


def _fake_trt(builder):
    """A stand-in for the ``tensorrt`` module whose ``Builder`` is ``builder``."""
    return SimpleNamespace(Builder=builder)


@pytest.mark.parametrize(
    "builder",
    [
        lambda _logger: (_ for _ in ()).throw(
            TypeError("pybind11::init(): factory function returned nullptr")
        ),
        lambda _logger: (_ for _ in ()).throw(RuntimeError("CUDA initialization failure")),
        lambda _logger: None,
    ],
)
def test_builder_without_gpu_is_one_line(builder):
    with pytest.raises(NoTensorRTGpu, match="^TensorRT found no usable CUDA GPU"):
        create_builder(_fake_trt(builder), logger=None)
    assert issubclass(NoTensorRTGpu, P2PError)


def test_timing_cache_read_up_front(tmp_path):
    assert read_timing_cache(None) is None
    assert read_timing_cache(tmp_path / "new.cache") == b""  # created after the build
    (tmp_path / "old.cache").write_bytes(b"abc")
    assert read_timing_cache(tmp_path / "old.cache") == b"abc"
    with pytest.raises(P2PError, match=r"dir\.cache: timing cache path is not a file"):
        (tmp_path / "dir.cache").mkdir()
        read_timing_cache(tmp_path / "dir.cache")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_timing_cache_is_one_line(tmp_path):
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"abc")
    cache.chmod(0)
    with pytest.raises(P2PError, match=r"t\.cache: timing cache cannot be read"):
        read_timing_cache(cache)


def test_failing_cache_write_is_a_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not write_timing_cache(blocker / "sub" / "t.cache", b"abc")  # parent is a file
    assert "timing cache not saved" in caplog.text
    assert write_timing_cache(tmp_path / "t.cache", b"abc")
    assert (tmp_path / "t.cache").read_bytes() == b"abc"


def _plan_sidecar(onnx: Path, precision: str) -> ExportCard:
    return engine_card(
        read_export_card(onnx),
        precision=precision,
        profile=BatchProfile(1, 2, 4),
        trt_version="10.3.0",
        gpu_name=None,
        compute_capability=None,
    )


def test_write_plan_sidecar_first_and_no_leftovers(tiny_onnx_fp16, tmp_path):
    plan = tmp_path / "model_fp16.plan"
    write_plan(plan, b"engine-1", _plan_sidecar(tiny_onnx_fp16, "fp16"))
    assert plan.read_bytes() == b"engine-1"
    assert read_export_card(plan).precision == "fp16"
    assert sorted(p.name for p in tmp_path.iterdir()) == [plan.name, plan.name + ".json"]


def test_failed_plan_write_keeps_the_old_pair(tiny_onnx_fp16, tmp_path):
    """A write that fails (here: the sidecar cannot be serialised) leaves the old plan and
    the old sidecar untouched, and no staging folder."""
    plan = tmp_path / "model_fp16.plan"
    write_plan(plan, b"old", _plan_sidecar(tiny_onnx_fp16, "fp16"))
    old_side = card_path(plan).read_text()
    bad = _plan_sidecar(tiny_onnx_fp16, "fp16")
    bad.extra["unserialisable"] = object()
    with pytest.raises(TypeError):
        write_plan(plan, b"new", bad)
    assert plan.read_bytes() == b"old" and card_path(plan).read_text() == old_side
    assert sorted(p.name for p in tmp_path.iterdir()) == [plan.name, plan.name + ".json"]


def test_write_plan_check_failure_leaves_nothing(tiny_onnx_fp16, tmp_path):
    """The parity run happens on the staged pair: when it fails, no plan reaches the final
    name and no staging folder is left."""
    plan = tmp_path / "model_fp16.plan"

    def failing(staged: Path) -> dict:
        assert staged.is_file() and card_path(staged).is_file() and staged != plan
        raise P2PError(f"{plan}: engine parity check failed: PSNR 12.0 dB (>= 40 dB)")

    with pytest.raises(P2PError, match="engine parity check failed"):
        write_plan(plan, b"engine", _plan_sidecar(tiny_onnx_fp16, "fp16"), check=failing)
    assert list(tmp_path.iterdir()) == []


def test_write_plan_records_check_figures(tiny_onnx_fp16, tmp_path):
    plan = tmp_path / "model_fp16.plan"
    figures = {"engine_parity": {"passed": True, "min_psnr_db": 51.2}}
    side = write_plan(
        plan, b"engine", _plan_sidecar(tiny_onnx_fp16, "fp16"), check=lambda _: figures
    )
    assert side.extra["engine_parity"] == figures["engine_parity"]
    assert read_export_card(plan).extra["engine_parity"]["min_psnr_db"] == 51.2


class _Config:
    """Stands in for an ``IBuilderConfig`` in the two calls :func:`attach_timing_cache` makes;
    the return values are TensorRT's documented ones (create_timing_cache: None on bad bytes;
    set_timing_cache: False on a cache from another GPU/version with ignore_mismatch=False)."""

    def __init__(self, accepts: bool, parses: bool = True) -> None:
        self.accepts, self.parses, self.set = accepts, parses, []

    def create_timing_cache(self, data: bytes):
        return None if data and not self.parses else ("cache", data)

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False
        ok = self.accepts or cache[1] == b""
        if ok:
            self.set.append(cache[1])
        return ok


def test_timing_cache_from_another_gpu_is_dropped_with_a_warning(tmp_path, caplog):
    good = _Config(accepts=True)
    assert attach_timing_cache(good, b"abc", tmp_path / "t.cache") and good.set == [b"abc"]
    other_gpu = _Config(accepts=False)
    assert not attach_timing_cache(other_gpu, b"abc", tmp_path / "t.cache")
    assert other_gpu.set == [b""] and "cannot use this timing cache" in caplog.text
    garbage = _Config(accepts=True, parses=False)
    assert not attach_timing_cache(garbage, b"zzz", tmp_path / "t.cache") and garbage.set == [b""]


class _RaisingConfig(_Config):
    """``create_timing_cache`` raising on damaged bytes (a pybind RuntimeError) instead of
    returning None: still a warning and an empty cache, not a failed build."""

    def create_timing_cache(self, data: bytes):
        if data:
            raise RuntimeError("Error Code 1: timing cache is corrupted")
        return ("cache", data)


def test_timing_cache_that_raises_is_dropped_with_a_warning(tmp_path, caplog):
    cfg = _RaisingConfig(accepts=True)
    assert not attach_timing_cache(cfg, b"zzz", tmp_path / "t.cache") and cfg.set == [b""]
    assert "cannot use this timing cache" in caplog.text


def test_parser_errors_reparse_is_strongly_typed(tmp_path):
    """The re-parse that names the parser's errors uses the build's strongly typed network
    (Polygraphy's CreateNetwork sets 1 << STRONGLY_TYPED); the parser error API is TensorRT's
    (ParserError.desc(), node_name(), node_operator())."""
    from p2p_deploy.export.tensorrt_build import parser_errors

    flags_seen: list[int] = []

    class Err:
        def desc(self):
            return "Unsupported ONNX data type: DOUBLE"

        def node_name(self):
            return "/down1/conv/Conv"

        def node_operator(self):
            return "Conv"

    class Parser:
        num_errors = 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return False

        def get_error(self, i):
            return Err()

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            flags_seen.append(flags)
            return object()

    def logger(_severity):
        return None

    logger.ERROR = 2  # type: ignore[attr-defined]
    trt = SimpleNamespace(
        Builder=Builder,
        Logger=logger,
        OnnxParser=Parser,
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1),
    )
    msg = parser_errors(trt, tmp_path / "m.onnx")
    assert flags_seen == [1 << 1]
    assert msg == "Unsupported ONNX data type: DOUBLE (node /down1/conv/Conv, Conv)"


# -- build_engine's order of events, with TensorRT and Polygraphy stood in for --------------


class _Obj:
    """A TensorRT object stand-in (weak-referenceable, so the test sees when it is freed)."""


def _fake_build(monkeypatch, events: list, refs: dict):
    """Stand-ins for ``tensorrt`` and ``polygraphy.backend.trt`` that record what build_engine
    does, and the precision checks reduced to no-ops (they have tests of their own)."""
    import weakref

    from p2p_deploy.export import tensorrt_build as tb
    from p2p_deploy.export import trt_precision

    def keep(name: str, obj):
        refs[name] = weakref.ref(obj)
        return obj

    def network_from_onnx(path, strongly_typed):
        assert strongly_typed
        events.append("parse")
        return lambda: (keep("builder", _Obj()), keep("network", _Obj()), keep("parser", _Obj()))

    class Config(_Obj):
        num_optimization_profiles = 1

        def create_timing_cache(self, data):
            return SimpleNamespace(data=data)

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

        def get_timing_cache(self):
            return SimpleNamespace(serialize=lambda: b"cache")

    class Engine(_Obj):
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ("input", "output")[i]

        def get_tensor_dtype(self, name):
            return "DataType.HALF"

    def engine_bytes(net, config):
        events.append("build")
        return lambda: b"plan"

    class Profile:
        def add(self, *args):
            return self

    poly = SimpleNamespace(
        NetworkFromOnnxPath=network_from_onnx,
        Profile=Profile,
        CreateConfig=lambda **kw: lambda builder, network: keep("config", Config()),
        EngineBytesFromNetwork=engine_bytes,
        EngineFromBytes=lambda data: lambda: keep("engine", Engine()),
    )
    trt = SimpleNamespace(
        __version__="10.13.3.9",
        MemoryPoolType=SimpleNamespace(WORKSPACE=0),
        ProfilingVerbosity=SimpleNamespace(DETAILED=2),
        HardwareCompatibilityLevel=SimpleNamespace(AMPERE_PLUS=1),
    )
    trt.Logger = type("Logger", (), {"ERROR": 3, "__init__": lambda self, sev: None})
    modules = {"tensorrt": trt, "polygraphy.backend.trt": poly}
    monkeypatch.setattr(tb, "require", lambda name: modules[name])
    monkeypatch.setattr(tb, "create_builder", lambda trt, logger: events.append("gpu check"))
    monkeypatch.setattr(tb, "inspect_engine", lambda *a: "{}")
    monkeypatch.setattr(trt_precision, "network_layers", lambda network: [])
    monkeypatch.setattr(trt_precision, "network_verdict", lambda *a: {"network": "ok"})
    monkeypatch.setattr(trt_precision, "io_verdict", lambda *a: "ok")
    rec = SimpleNamespace(to_dict=lambda: {})
    monkeypatch.setattr(trt_precision, "read_inspector", lambda info, want: rec)
    monkeypatch.setattr(trt_precision, "inspector_verdict", lambda *a: None)


def test_no_cuda_buffers_is_said_before_the_build(monkeypatch, tiny_onnx_fp16, tmp_path):
    """CPU torch and no pycuda: the parity run after the build could not run, so the build
    does not start (item: fail before a long build, not after)."""
    from p2p_deploy.export.tensorrt_build import NoCudaBuffers, check_can_verify_engines
    from p2p_deploy.runners import trt_memory

    events: list = []
    _fake_build(monkeypatch, events, {})
    monkeypatch.setattr(trt_memory, "torch_cuda_available", lambda: False)
    with pytest.raises(NoCudaBuffers, match=r"no CUDA buffers .*p2p-deploy\[pycuda\]") as err:
        check_can_verify_engines()
    assert "\n" not in str(err.value) and isinstance(err.value, MissingDependency)
    with pytest.raises(NoCudaBuffers):
        build_engine(tiny_onnx_fp16, tmp_path / "model_fp16.plan", profile=BatchProfile(1, 2, 4))
    assert events == ["gpu check"]  # nothing parsed, nothing built
    assert not list(tmp_path.iterdir())


def test_parity_runs_after_polygraphy_objects_are_freed(monkeypatch, tiny_onnx_fp16, tmp_path):
    """The engine parity run makes its own TensorRT runtime (with the runner's logger): by then
    Polygraphy's builder, network, parser, config and engine are gone, and it runs inside the
    ERROR verbosity guard; the timing cache read before they went is still written."""
    from polygraphy.logger import G_LOGGER

    from p2p_deploy.export import trt_parity
    from p2p_deploy.export.parity import ParityReport
    from p2p_deploy.runners import trt_memory

    events: list = []
    refs: dict = {}
    _fake_build(monkeypatch, events, refs)
    monkeypatch.setattr(trt_memory, "torch_cuda_available", lambda: True)

    def parity(staged, reference, profile):
        events.append("parity")
        alive = [name for name, ref in refs.items() if ref() is not None]
        assert alive == [], f"alive during parity: {alive}"
        assert G_LOGGER.module_severity.get() == G_LOGGER.ERROR
        from p2p_deploy.export.parity import ParityFigure

        report = ParityReport(model=str(staged), precision="fp16", test_norm="stats")
        report.figures.append(ParityFigure(1, 0.0, 90.0))
        return report

    monkeypatch.setattr(trt_parity, "check_engine_parity", parity)
    cache = tmp_path / "timing.cache"
    plan = tmp_path / "out" / "model_fp16.plan"
    plan.parent.mkdir()
    side = build_engine(tiny_onnx_fp16, plan, profile=BatchProfile(1, 2, 4), timing_cache=cache)
    assert events == ["gpu check", "parse", "build", "parity"]
    assert sorted(refs) == ["builder", "config", "engine", "network", "parser"]
    assert plan.read_bytes() == b"plan" and cache.read_bytes() == b"cache"
    assert side.precision == "fp16" and "engine_parity" in side.extra
