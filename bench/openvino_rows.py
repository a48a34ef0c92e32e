"""The OpenVINO rows of a CPU benchmark: one per precision a model can run in.

* an fp32 ONNX: ``openvino CPU`` (fp32, the f32 hint set explicitly) and, where the CPU has
  AVX512_BF16 or AMX, ``openvino CPU bf16-hint`` (labelled with what the compiled model runs:
  ``bf16``, or ``bf16+fp32`` when some layers stay fp32);
* an INT8 ONNX (``p2p export --int8``): ``openvino CPU`` (int8);
* an fp16 ONNX: none (OpenVINO's CPU plugin would compute it in fp32 or bf16, rows the fp32
  model already gives).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from p2p_deploy.bench.harness import Candidate, Skipped
from p2p_deploy.deps import available
from p2p_deploy.errors import P2PError
from p2p_deploy.models.card import read_export_card

INSTALL = 'pip install "p2p-deploy[openvino]"'


def _precision(path: Path) -> str | None:
    try:
        return read_export_card(path).precision
    except P2PError:
        return None


def openvino_candidates(
    models: Sequence[Path], device: str, threads: int | None
) -> tuple[list[Candidate], list[Skipped]]:
    """The OpenVINO candidates for ``models`` (ONNX files with cards) on ``device``."""
    if device != "cpu":
        return [], [Skipped("openvino", f"OpenVINO rows run on the CPU; this run is on {device}")]
    if not models:
        return [], [Skipped("openvino", "no ONNX model to run (give --onnx or --checkpoint)")]
    if not available("openvino"):
        return [], [Skipped("openvino", f"openvino is not installed ({INSTALL})")]
    from p2p_deploy.runners.factory import open_runner
    from p2p_deploy.runners.openvino_runner import cpu_bf16_supported

    bf16 = cpu_bf16_supported()
    cands: list[Candidate] = []
    skipped: list[Skipped] = []
    for m in models:
        prec = _precision(m)
        if prec not in ("fp32", "int8"):
            continue
        variants = [("openvino CPU", {})]
        if prec == "fp32" and bf16:
            variants.append(("openvino CPU bf16-hint", {"precision": "bf16"}))
        elif prec == "fp32":
            skipped.append(
                Skipped("openvino CPU bf16-hint", "this CPU has no AVX512_BF16 or AMX-BF16")
            )
        for label, opts in variants:
            cands.append(
                Candidate(
                    label,
                    lambda src=str(m), opts=opts: open_runner(
                        src, "openvino", device="cpu", threads=threads, **opts
                    ),
                    device="cpu",
                    source=str(m),
                )
            )
    return cands, skipped
