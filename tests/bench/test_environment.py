"""What the environment section records."""

from __future__ import annotations

import json
import re

from p2p_deploy.bench import environment


def test_collect_is_complete_and_serialisable():
    env = environment.collect()
    json.dumps(env, allow_nan=False)
    assert env["cpu"]["logical_cores"] >= 1 and env["cpu"]["model"]
    assert env["versions"]["torch"] and env["versions"]["onnxruntime"] and env["versions"]["opencv"]
    assert env["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git"]["commit"])


def test_machine_slug_and_default_dir(tmp_path):
    cpu_env = {
        "cpu": {"model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "usable_cores": 8},
        "gpu": None,
        "date": "2026-01-02T03:04:05+00:00",
    }
    assert environment.machine_slug(cpu_env) == "intel-xeon-platinum-8375c-8c"
    gpu_env = {**cpu_env, "gpu": {"name": "NVIDIA H100 80GB HBM3"}}
    assert environment.machine_slug(gpu_env) == "nvidia-h100-80gb-hbm3-8c"
    assert (
        environment.default_report_dir(cpu_env, tmp_path)
        == tmp_path / "intel-xeon-platinum-8375c-8c-2026-01-02"
    )


def test_collect_without_torch(monkeypatch):
    """A deploy install: no torch figures, no crash (and no GPU here)."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    env = environment.collect()
    assert env["torch_threads"] is None and env["gpu"] is None
    json.dumps(env)
