"""Which runners a benchmark compares, from the models given and what this machine has.

* a checkpoint gives eager torch fp32 (the baseline) and, on CUDA, torch fp16 channels-last
  with and without CUDA graphs;
* ONNX files (or, without ``--onnx``, an fp32 and an fp16 export of the checkpoint made into a
  temporary folder) give ONNX Runtime on every execution provider present (CPU, CUDA, and
  TensorRT when onnxruntime-gpu has it);
* TensorRT plans give the TensorRT runner (CUDA only);
* on a CPU run, fp32 and INT8 ONNX files also give OpenVINO rows (when it is installed): fp32,
  the bf16 inference-precision hint (CPUs with AVX512_BF16/AMX), and the INT8 graph in int8.
Whatever cannot run here is returned as :class:`Skipped` with the reason, so the report says
what was not measured and why instead of silently leaving it out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_deploy.bench.harness import Candidate, Skipped
from p2p_deploy.errors import P2PError

if TYPE_CHECKING:
    from p2p_deploy.models.opening import ModelFile

log = logging.getLogger(__name__)

BENCH_BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino", "tensorrt")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda:0`` when a CUDA GPU is visible (to torch, else to pycuda or
    cuda-python: a deploy box may have no torch), else ``cpu``; others pass through."""
    if device != "auto":
        return device
    from p2p_deploy.gpu import gpu_identity

    return "cuda:0" if gpu_identity(0)[0] is not None else "cpu"


def export_temporary_onnx(
    checkpoint: ModelFile,
    workdir: Path,
    test_norm: str | None,
    run_size: tuple[int, int] | None = None,
) -> list[Path]:
    """Export the (opened) checkpoint to ``workdir/model_fp32.onnx`` and ``model_fp16.onnx``
    (+ cards), for frames of ``run_size`` (H, W) when given (dynamic height and width, that
    size as its profile). The fp16 export is skipped with a warning when it fails (the fp32
    one must succeed).
    """
    from p2p_deploy.export.onnx_export import export_onnx
    from p2p_deploy.models.spatial import SpatialProfile

    generator = checkpoint.generator()
    spatial = SpatialProfile(run_size, run_size, run_size) if run_size else None
    paths = []
    for precision in ("fp32", "fp16"):
        path = workdir / f"model_{precision}.onnx"
        try:
            export_onnx(
                generator,
                path,
                precision=precision,
                test_norm=test_norm,
                card=checkpoint.card,
                spatial=spatial,
            )
        except P2PError as exc:
            if precision == "fp32":
                raise
            log.warning("fp16 ONNX export failed, benchmarking fp32 only: %s", exc)
            continue
        paths.append(path)
    return paths


def _ort_providers() -> list[str]:
    from p2p_deploy.deps import require

    return list(require("onnxruntime").get_available_providers())


def plan_candidates(
    *,
    checkpoint: ModelFile | None,
    onnx: Sequence[Path],
    engines: Sequence[Path],
    backends: Sequence[str],
    device: str,
    test_norm: str | None,
    workdir: Path,
    threads: int | None = None,
    batches: Sequence[int] = (),
    compile: bool = True,
    run_size: tuple[int, int] | None = None,
) -> tuple[list[Candidate], list[Skipped]]:
    """The candidates to time and the ones that cannot run here.

    Args:
        checkpoint: the opened generator checkpoint (run folder, .safetensors, .pth) or None;
            every torch row and the temporary exports use it (read once).
        onnx: exported models; empty with a checkpoint: temporary exports in ``workdir``.
        engines: TensorRT plans.
        backends: subset of :data:`BENCH_BACKENDS`.
        device: ``cpu`` or ``cuda[:N]`` (already resolved).
        test_norm: forced test-time normalisation for the torch runners and exports
            (None: the checkpoint's default), so every backend computes the same function.
        threads: ONNX Runtime intra-op threads, every provider (None: the runner's default; torch's
            thread count is set by the caller, it is process-wide).
        batches: the run's batch sizes (compiled rows are timed at the largest).
        compile: add the torch.compile rows on CUDA (each compiles for tens of seconds).
        run_size: the (H, W) the rows run at (``--size``, padded); the temporary exports are
            made for it. None: the model's own square.
    """
    from p2p_deploy.runners.factory import open_runner

    unknown = set(backends) - set(BENCH_BACKENDS)
    if unknown:
        raise P2PError(
            f"unknown backend(s) {', '.join(sorted(unknown))}: use {', '.join(BENCH_BACKENDS)}."
        )
    cuda = device.startswith("cuda")
    cands: list[Candidate] = []
    skipped: list[Skipped] = []
    ckpt = str(checkpoint.path) if checkpoint else None

    if "torch" in backends and checkpoint is not None:
        # (label, runner options, baseline): eager fp32 is the baseline; fp16 rows need CUDA.
        fp16 = {"precision": "fp16", "channels_last": True}
        torch_rows = [("torch eager", {"precision": "fp32", "channels_last": False}, True, None)]
        if cuda:
            torch_rows += [
                ("torch channels-last", fp16, False, None),
                ("torch channels-last+graphs", {**fp16, "cuda_graphs": True}, False, None),
            ]
            if compile:
                # torch.compile (inductor): static shapes, compiled on the first call at a
                # shape (timed apart as the row's first_call_s, not in the timed phase), with
                # the compiled kernels captured in CUDA graphs and without. One compile (tens
                # of seconds) per shape: timed at the largest batch, and opened with that
                # static batch, as `p2p run --compile` does: the bench's end-to-end run (which
                # opens the row's runner again) then pads its last batch instead of compiling
                # a second shape inside the timed run.
                big = (max(batches),) if batches else None
                comp = {**fp16, "compile": True, "static_batch": big[0] if big else None}
                torch_rows += [
                    ("torch compile", comp, False, big),
                    ("torch compile+graphs", {**comp, "cuda_graphs": True}, False, big),
                ]
        else:
            skipped.append(
                Skipped("torch fp16", "fp16 torch needs a CUDA GPU (CPU half convs are slow)")
            )
        for label, opts, baseline, at in torch_rows:
            cands.append(
                Candidate(
                    label,
                    lambda opts=opts: open_runner(
                        checkpoint, "torch", device=device, test_norm=test_norm, **opts
                    ),
                    baseline=baseline,
                    device=device,
                    source=ckpt,
                    batches=at,
                )
            )
    elif "torch" in backends:
        skipped.append(
            Skipped(
                "torch eager", "no --checkpoint: no eager baseline, speedups and accuracy are null"
            )
        )

    onnx_models = list(onnx)
    if not onnx_models and checkpoint is not None and {"onnxruntime", "openvino"} & set(backends):
        onnx_models = export_temporary_onnx(checkpoint, workdir, test_norm, run_size)
    if "onnxruntime" in backends:
        models = onnx_models
        if not models:
            skipped.append(
                Skipped("onnxruntime", "no --onnx and no --checkpoint to export one from")
            )
        try:
            providers = _ort_providers() if models else []
        except P2PError as exc:
            skipped.append(Skipped("onnxruntime", str(exc)))
            providers = []
        # (label, provider, runner options): a CPU run times the CPU provider; a CUDA run times
        # every provider onnxruntime has.
        variants = [
            ("onnxruntime CPU", "CPUExecutionProvider", {"device": "cpu", "threads": threads}),
            (
                "onnxruntime CUDA",
                "CUDAExecutionProvider",
                {"device": device, "use_trt_provider": False, "threads": threads},
            ),
            (
                "onnxruntime TensorRT-EP",
                "TensorrtExecutionProvider",
                {"device": device, "use_trt_provider": True, "threads": threads},
            ),
        ]
        for m in models:
            src = str(m)
            for label, provider, opts in variants:
                cpu = provider == "CPUExecutionProvider"
                if not ((cpu and not cuda) or (cuda and provider in providers)):
                    continue
                cands.append(
                    Candidate(
                        label,
                        lambda src=src, opts=opts: open_runner(src, "onnxruntime", **opts),
                        device=opts["device"],
                        source=src,
                    )
                )
            if cuda and providers and "CUDAExecutionProvider" not in providers:
                skipped.append(
                    Skipped(
                        "onnxruntime CUDA",
                        "onnxruntime has no CUDA provider: pip install onnxruntime-gpu",
                    )
                )

    if "openvino" in backends:
        from p2p_deploy.bench.openvino_rows import openvino_candidates

        more, why = openvino_candidates(onnx_models, device, threads)
        cands += more
        skipped += why

    if "tensorrt" in backends:
        if not engines:
            from p2p_deploy.deps import available

            # Point at the step the user is missing: the package first, then the engine.
            reason = (
                "no --engine given (build one with `p2p export CHECKPOINT --fp16` on this GPU)"
                if available("tensorrt")
                else 'tensorrt is not installed (pip install "p2p-deploy[gpu]" on a CUDA machine)'
            )
            skipped.append(Skipped("tensorrt", reason))
        elif not cuda:
            skipped.append(
                Skipped("tensorrt", "TensorRT engines need a CUDA GPU; this run is on the CPU")
            )
        else:
            for e in engines:
                src = str(e)
                cands.append(
                    Candidate(
                        "tensorrt",
                        lambda src=src: open_runner(src, "tensorrt", device=device),
                        device=device,
                        source=src,
                    )
                )
    return cands, skipped
