"""One import name: the wheel's contents, the import-layer contracts, and no shadowing by a
user's own ``train.py`` / ``export/`` in the working folder."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import build_wheel

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from the repository (offline: the venv's own setuptools)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_holds_only_p2p_deploy(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {
        "p2p_deploy",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    # The repository's train/, export/, bench/ are inside, as subpackages.
    for sub in ("train/loop.py", "export/command.py", "bench/session.py"):
        assert f"p2p_deploy/{sub}" in names
    # Every folder of Python files in the repo made it in (the package list in pyproject is
    # explicit because of package-dir; a forgotten subpackage would vanish from wheels).
    for root in ("p2p_deploy", "train", "export", "bench"):
        for init in (REPO / root).rglob("__init__.py"):
            rel = init.relative_to(REPO).as_posix()
            rel = rel if root == "p2p_deploy" else f"p2p_deploy/{rel}"
            assert rel in names, f"{rel} missing from the wheel"
    assert not any("/reports/" in n for n in names), "committed reports must not ship"


def test_import_layers_hold(wheel: Path, tmp_path: Path):
    """import-linter's contracts (.importlinter) on the package as installed from the wheel.

    grimp reads a package's own folder, so it cannot follow setuptools' package-dir mapping in
    the source tree; the unpacked wheel is the package exactly as users import it.
    """
    zipfile.ZipFile(wheel).extractall(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run(
        [str(BIN / "lint-imports"), str(REPO / ".importlinter"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "4 kept, 0 broken" in out


def test_core_contract_names_every_core_module():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".importlinter")
    listed = set(cfg["importlinter:contract:core"]["source_modules"].split())
    core = {
        f"p2p_deploy.{p.stem if p.is_file() else p.name}"
        for p in (REPO / "p2p_deploy").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    } - {"p2p_deploy.cli"}
    assert listed == core


@pytest.mark.slow
def test_user_files_do_not_shadow_the_package(tmp_path: Path):
    """ML projects often have a train.py or an export/ folder; the CLI must still work there."""
    (tmp_path / "train.py").write_text("raise SystemExit('user train.py was imported')\n")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "__init__.py").write_text("raise SystemExit('user export/')\n")
    (tmp_path / "bench.py").write_text("raise SystemExit('user bench.py was imported')\n")
    for cmd in (
        [sys.executable, "-m", "p2p_deploy", "train", "--help"],
        [str(BIN / "p2p"), "export", "--help"],
        [sys.executable, "-m", "p2p_deploy", "bench", "--help"],
    ):
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert res.returncode == 0, (cmd, res.stdout + res.stderr)
        assert "Usage" in res.stdout
    # And the modules themselves import from there (the commands import them lazily).
    res = subprocess.run(
        [sys.executable, "-c", "import p2p_deploy.train.config, p2p_deploy.export.command"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr


def test_each_gpu_extra_is_one_cuda_major():
    """Each GPU extra holds one CUDA major: PyPI's onnxruntime-gpu 1.19-1.26 are CUDA 12 builds
    (their providers link libcudart.so.12), 1.27 and newer CUDA 13 builds (libcudart.so.13,
    libcublas.so.13). `gpu` pairs TensorRT 10 for CUDA 12 with the former, `gpu-trt11` TensorRT
    11 for CUDA 13 with the latter; an open floor would resolve the newest (CUDA 13) beside a
    CUDA 12 TensorRT."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def spec(extra: str, name: str):
        (req,) = [r for r in map(Requirement, extras[extra]) if r.name == name]
        return req.specifier

    cuda12_ort = [Version(v) for v in ("1.23.2", "1.24.4", "1.26.0")]
    cuda13_ort = [Version(v) for v in ("1.27.0", "1.31.1")]
    gpu = spec("gpu", "onnxruntime-gpu")
    assert all(v in gpu for v in cuda12_ort) and not any(v in gpu for v in cuda13_ort)
    assert Version("1.22.1") not in gpu  # ignores enable_fallback=0
    assert Version("10.13.3.9") in spec("gpu", "tensorrt-cu12")
    assert Version("11.4.0.106") not in spec("gpu", "tensorrt-cu12")
    trt11 = spec("gpu-trt11", "onnxruntime-gpu")
    assert all(v in trt11 for v in cuda13_ort) and not any(v in trt11 for v in cuda12_ort)
    assert Version("11.4.0.106") in spec("gpu-trt11", "tensorrt-cu13")
