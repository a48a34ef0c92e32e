"""One whole ``p2p bench`` run, from arguments to the written report (the CLI's engine).

Kept out of the CLI module so that tests and scripts can call it directly and so that the CLI
stays a thin layer (argument parsing, progress bar, printing).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import check_writable_dir
from p2p_deploy.bench import environment
from p2p_deploy.bench.candidates import BENCH_BACKENDS, plan_candidates, resolve_device
from p2p_deploy.bench.harness import HarnessResult, Skipped, make_inputs, run_benchmark
from p2p_deploy.bench.load import mark_disturbed, wait_for_quiet
from p2p_deploy.bench.options import BenchArgs, shown_path
from p2p_deploy.bench.report import build_report, write_index, write_report
from p2p_deploy.bench.roofline import annotate_rows, compute_floor
from p2p_deploy.bench.timing import TimingPolicy
from p2p_deploy.devices import parse_device
from p2p_deploy.errors import DataError, P2PError, UsageError
from p2p_deploy.models.card import ExportCard
from p2p_deploy.models.config import GeneratorConfig
from p2p_deploy.models.flops import generator_flops
from p2p_deploy.models.opening import ModelFile
from p2p_deploy.models.spatial import Size, format_size, padded_size, parse_size

log = logging.getLogger(__name__)


def validate(args: BenchArgs) -> None:
    """Check the arguments before anything runs; raises P2PError naming the bad one."""
    if args.checkpoint is None and not args.onnx and not args.engine:
        raise UsageError("nothing to benchmark: give --checkpoint, --onnx or --engine.")
    if not args.batch or min(args.batch) < 1:
        raise UsageError(f"--batch: sizes must be positive integers, got {args.batch}.")
    if args.folder is not None and args.video is not None:
        raise UsageError("give --folder or --video for the end-to-end run, not both.")
    if args.warmup < 0 or args.duration <= 0:
        raise UsageError("--warmup must be >= 0 and --duration > 0 seconds.")
    if args.test_norm not in (None, "stats", "running"):
        raise UsageError(f"--test-norm {args.test_norm!r}: use stats or running.")
    if args.quiet_wait < 0:
        raise UsageError(f"--quiet-wait must be >= 0 seconds, got {args.quiet_wait:g}.")
    if args.size is not None:
        try:
            parse_size(args.size, "--size")
        except P2PError as exc:
            raise UsageError(str(exc)) from None
    for p in [args.checkpoint, *args.onnx, *args.engine, args.folder, args.video]:
        if p is not None and not Path(p).exists():
            raise P2PError(f"{p}: no such file or folder.")
    # The report is written after all the timing: an unwritable --out, or one holding files
    # p2p bench did not write, must fail now.
    check_writable_dir(args.out or Path.cwd() / environment.DEFAULT_REPORTS, "--out")
    if args.out is not None:
        from p2p_deploy.bench.report import BENCH_OUTPUT
        from p2p_deploy.outputs import check_output_folder

        check_output_folder(args.out, BENCH_OUTPUT)
    if args.video is not None:
        from p2p_deploy.media.video import VideoSource

        with VideoSource(args.video):  # unreadable: say so now, not after every row is timed
            pass
    try:
        parse_device(args.device)  # auto, cpu, cuda or cuda:N (the one device grammar)
    except P2PError as exc:
        raise UsageError(str(exc)) from None
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}.")
    unknown = set(args.backends or ()) - set(BENCH_BACKENDS)
    if unknown:
        raise UsageError(
            f"unknown backend(s) {', '.join(sorted(unknown))}: use {', '.join(BENCH_BACKENDS)}."
        )


@dataclass
class ModelInfo:
    """The benchmarked generator: image size, test norm, description, GFLOP per frame, the
    opened checkpoint (None without one), and with ``--size`` the frame size asked for and the
    size it runs at (padded to the stride; None: the model's own square)."""

    image_size: int
    test_norm: str
    desc: str
    gflop: float
    checkpoint: ModelFile | None = None
    size: Size | None = None
    run_size: Size | None = None
    stride: int = 1

    @property
    def frame(self) -> Size:
        """The (H, W) every row runs at."""
        return self.run_size or (self.image_size, self.image_size)


def _sizes(args: BenchArgs, cfg: GeneratorConfig) -> tuple[Size | None, Size | None, str]:
    """(--size, the size it runs at, words for the description)."""
    if args.size is None:
        return None, None, ""
    size = parse_size(args.size, "--size")
    run = padded_size(size, cfg.stride)
    padded = (
        "" if run == size else f", run at {format_size(run)} (padded to the stride {cfg.stride})"
    )
    return size, run, f"; frames of {format_size(size)}{padded}"


def _export_card(path: Path) -> ExportCard:
    """The card of the exported model at ``path``, once the model itself has passed the check
    ``p2p run`` makes (:func:`~p2p_deploy.models.opening.open_model`), so that a file that is
    no model says so, not that its card is missing.

    Raises:
        P2PError: not a readable model, or no export card beside it (one line each).
    """
    from p2p_deploy.models.card import read_export_card
    from p2p_deploy.models.opening import open_model

    return open_model(path).export_card or read_export_card(path)


def _model_info(args: BenchArgs) -> ModelInfo:
    """What is benchmarked: the checkpoint's generator, else the first model's card."""
    if args.checkpoint is not None:
        from p2p_deploy.models.opening import open_model

        ckpt = open_model(args.checkpoint)
        if not ckpt.is_checkpoint or ckpt.card is None or ckpt.state is None:
            raise UsageError(
                f"{args.checkpoint}: an exported {ckpt.kind} model; --checkpoint takes a run "
                "folder, .safetensors or .pth (exported models go to --onnx / --engine)."
            )
        cfg = ckpt.card.generator
        n = sum(t.numel() for t in ckpt.state.values() if t.is_floating_point())
        tn = args.test_norm or ckpt.card.test_norm
        size, run, words = _sizes(args, cfg)
        gflop = generator_flops(cfg, run) / 1e9
        per = f"frame at {format_size(run)}" if run else "image"
        desc = (
            f"U-Net generator ngf {cfg.ngf}, {cfg.image_size} px, {cfg.n_down} downsamplings, "
            f"{cfg.norm} norm, test norm {tn}, {n:,} parameters, {gflop:.3g} GFLOP per {per} "
            f"(`{shown_path(args.checkpoint)}`){words}"
        )
        return ModelInfo(cfg.image_size, tn, desc, gflop, ckpt, size, run, cfg.stride)
    model = (args.onnx or args.engine)[0]
    side = _export_card(model)
    g = side.generator
    size, run, words = _sizes(args, g)
    gflop = generator_flops(g, run) / 1e9
    per = f"frame at {format_size(run)}" if run else "image"
    desc = (
        f"U-Net generator ngf {g.ngf}, {side.image_size} px, {g.norm} norm, "
        f"test norm {side.test_norm}, {gflop:.3g} GFLOP per {per} (`{shown_path(model)}`)"
        f"{words}"
    )
    return ModelInfo(side.image_size, side.test_norm, desc, gflop, None, size, run, g.stride)


def _matching_models(
    paths: Sequence[Path], label: str, info: ModelInfo, with_checkpoint: bool
) -> tuple[list[Path], list[Skipped]]:
    """The models whose card matches what is benchmarked (image size; with a checkpoint also
    the test norm, the function the eager baseline computes); the others become Skipped."""
    keep: list[Path] = []
    skipped: list[Skipped] = []
    what = "the checkpoint" if with_checkpoint else "the first model"
    for path in paths:
        try:
            side = _export_card(path)
        except P2PError as exc:
            skipped.append(Skipped(label, str(exc)))
            continue
        if info.run_size is not None and not side.size_range().accepts(info.run_size):
            reason = (
                f"{path}: takes {side.size_range().describe()}, not {format_size(info.run_size)}"
                " (export it with `p2p export --spatial` covering that size)"
            )
        elif info.run_size is None and side.image_size != info.image_size:
            reason = f"{path}: {side.image_size} px, {what} is {info.image_size} px"
        elif with_checkpoint and side.test_norm != info.test_norm:
            reason = (
                f"{path}: exported with test norm {side.test_norm}, the checkpoint runs "
                f"{info.test_norm} (give --test-norm {side.test_norm} to compare them)"
            )
        else:
            keep.append(path)
            continue
        skipped.append(Skipped(label, reason))
    return keep, skipped


def _pick_e2e(result: HarnessResult, batch: int) -> dict[str, Any] | None:
    """The row of the fastest candidate at ``batch`` by stream throughput (what the pipeline
    sees, so what a user would deploy)."""
    rows = [r for r in result.rows if r["batch"] == batch and r.get("accuracy_error") is None]
    return max(rows, key=lambda r: r.get("stream_ips") or r["throughput_ips"]) if rows else None


def run_bench(
    args: BenchArgs,
    on_progress: Callable[[str], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run the benchmark described by ``args`` and write the report.

    Returns (report dict, written paths). ``on_plan`` receives the number of rows to time.
    Raises:
        P2PError: no model given, bad batch list, unreadable inputs, or nothing could run.
    """
    validate(args)
    batches = sorted(set(args.batch))
    if args.threads is not None:
        with contextlib.suppress(ImportError):  # a deploy install may have no torch
            import torch

            torch.set_num_threads(args.threads)
        import cv2

        cv2.setNumThreads(args.threads)  # OpenCV's pool decodes and resizes in the e2e run
    # Before anything is timed: is another process using the CPU? Wait for it (bounded).
    before, waited = wait_for_quiet(args.quiet_wait, sample_s=1.0 if args.quiet_wait else 0.5)
    if before.disturbed:
        log.warning(
            "WARNING: the machine is busy (%s); rows timed under load are marked and give no "
            "speed-up. Re-run on a quiet machine%s.",
            before.describe(),
            "" if args.quiet_wait else " or with --quiet-wait SECONDS",
        )
    env = environment.collect()
    device = resolve_device(args.device)
    info = _model_info(args)
    image_size, model_desc, gflop = info.image_size, info.desc, info.gflop
    with_ckpt = args.checkpoint is not None
    onnx, bad_onnx = _matching_models(args.onnx, "onnxruntime", info, with_ckpt)
    engines, bad_engines = _matching_models(args.engine, "tensorrt", info, with_ckpt)

    images = None
    inputs_desc = f"seeded uniform noise in [-1, 1] (seed {args.seed})"
    if args.folder is not None:
        from p2p_deploy.bench.e2e import load_folder_inputs

        if info.run_size is None:
            images = load_folder_inputs(args.folder, image_size, max(batches))
            fitted = f"fitted to {image_size} px"
        else:
            images = load_folder_inputs(
                args.folder, image_size, max(batches), size=info.run_size, stride=info.stride
            )
            fitted = f"brought to {format_size(info.run_size)}"
        inputs_desc = (
            f"{len(images)} images of `{shown_path(args.folder)}` {fitted} "
            "(repeated to fill a batch)"
        )
    inputs = make_inputs(info.frame, max(batches), args.seed, images)

    policy = TimingPolicy(warmup_s=args.warmup, duration_s=args.duration, min_iters=args.min_iters)
    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as tmp:
        cands, skipped = plan_candidates(
            checkpoint=info.checkpoint,
            onnx=onnx,
            engines=engines,
            # --onnx given but none matches: no temporary export stands in for them.
            backends=[
                b
                for b in (args.backends or BENCH_BACKENDS)
                if b != "onnxruntime" or onnx or not args.onnx
            ],
            device=device,
            test_norm=args.test_norm,
            workdir=Path(tmp),
            threads=args.threads,
            batches=batches,
            compile=args.compile,
            run_size=info.run_size,
        )
        skipped[:0] = bad_onnx + bad_engines
        if on_plan:
            on_plan(len(cands) * len(batches))
        result = run_benchmark(cands, batches, policy, inputs, on_progress)
        result.skipped[:0] = skipped
        mark_disturbed(result.rows)
        if not result.rows:
            reasons = "; ".join(f"{s.label}: {s.reason}" for s in result.skipped) or "no candidates"
            raise P2PError(f"no backend could run ({reasons}).")
        e2e = None
        if args.folder is not None or args.video is not None:
            e2e = _run_e2e(args, result, cands, batches)

    # The compute floor, measured after the timed rows so its matmuls disturb none of them.
    floor = compute_floor(gflop, device, {r["precision"] for r in result.rows}, info.run_size)
    annotate_rows(result.rows, gflop, floor)

    config = {
        **args.to_config(),
        "compute_floor": floor,
        "device_resolved": device,
        "batches": batches,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "min_iters": args.min_iters,
        "model_desc": model_desc,
        "inputs_desc": inputs_desc,
        "frame": list(info.frame),  # (H, W) every row ran at
        "load_before": {**before.to_dict(), "waited_s": round(waited, 1)},
    }
    report = build_report(
        env, config, args.command(), result.rows, [s.to_dict() for s in result.skipped], e2e
    )
    out = args.out or environment.default_report_dir(env)
    paths = write_report(report, out)
    # A report filed among the committed ones (``bench/reports/<name>/``) refreshes their index.
    parent = Path(out).resolve().parent
    if parent.name == "reports" and parent.parent.name == "bench":
        paths["index"] = write_index(parent)
    return report, paths


def _run_e2e(
    args: BenchArgs, result: HarnessResult, cands: Sequence[Any], batches: list[int]
) -> dict[str, Any]:
    from p2p_deploy.bench.e2e import run_e2e

    batch = args.e2e_batch or batches[0]
    row = _pick_e2e(result, batch) or _pick_e2e(result, batches[0])
    if row is None:
        raise DataError("no backend row to run the end-to-end pipeline with.")
    cand = next(c for c in cands if c.label == row["label"] and c.source == row["source"])
    log.info("end to end with %s, batch %d", row["describe"], batch)
    with cand.open() as runner:
        runner.warmup(batch)  # as `p2p run` does before its first frame, at its batch
        section = run_e2e(
            runner,
            folder=args.folder,
            video=args.video,
            batch=batch,
            workers=args.workers,
            max_frames=args.max_frames,
            # --size: frames at their own resolution, as `p2p run --resize native` runs them
            resize="native" if args.size is not None else "stretch",
        )
    # The model alone on the same batches, as the pipeline feeds it (the harness's row).
    section["model_stream_ips"] = row.get("stream_ips") if row["batch"] == batch else None
    section["model_row"] = f"{row['label']} {row['precision']} batch {row['batch']}"
    return section
