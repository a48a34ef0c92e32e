"""`p2p bench`: every backend and precision side by side, written up as a report.

Only typer and the standard library are imported at module level (``p2p --help`` stays fast);
the harness (torch, onnxruntime, matplotlib) is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers like 1,4,16, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"batch sizes must be positive, got {text!r}")
    return values


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


# One paragraph per string: rich help keeps a docstring's single line breaks as hard breaks.
HELP = (
    "Benchmark every backend/precision/batch the models and this machine allow.\n\n"
    "Writes report.md (table + conclusions), report.json (schema version 1) and latency / "
    "throughput plots. Latency p50/p90/p99 per row, throughput, speedup over eager torch fp32 "
    "at the same batch (same run), max abs error and PSNR against it, peak memory; with "
    "--folder or --video also the end-to-end pipeline fps and its stage times."
)


def register(app: typer.Typer) -> None:
    @app.command("bench", help=HELP)
    def bench(
        checkpoint: Path | None = typer.Option(
            None,
            "--checkpoint",
            "-c",
            help="Generator checkpoint (run folder, .safetensors, or canonical latest_net_G.pth): "
            "eager torch fp32 baseline (+ fp16 channels-last / CUDA graphs on a GPU); "
            "without --onnx it is also exported to temporary fp32 and fp16 ONNX files.",
        ),
        onnx: list[Path] = typer.Option([], "--onnx", help="Exported model.onnx (repeatable)."),
        engine: list[Path] = typer.Option(
            [], "--engine", help="TensorRT model.plan (repeatable; GPU)."
        ),
        backends: str = typer.Option(
            "torch,onnxruntime,openvino,tensorrt",
            "--backends",
            help="Comma list of backends to include.",
        ),
        batch: str = typer.Option(
            "1,4", "--batch", "-b", help="Comma list of batch sizes, e.g. 1,4,16."
        ),
        warmup: float = typer.Option(2.0, "--warmup", help="Seconds of untimed warm-up per row."),
        duration: float = typer.Option(
            10.0,
            "--duration",
            help="Seconds of timing per row (extended up to 2x while the median drifts).",
        ),
        min_iters: int = typer.Option(10, "--min-iters", help="Fewest timed iterations per row."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
        test_norm: str | None = typer.Option(
            None,
            "--test-norm",
            help="stats or running (default: the checkpoint's; see `p2p export`).",
        ),
        folder: Path | None = typer.Option(
            None,
            "--folder",
            help="Images: real inputs for accuracy, and the end-to-end run over them.",
        ),
        video: Path | None = typer.Option(None, "--video", help="A video for the end-to-end run."),
        e2e_batch: int | None = typer.Option(
            None, "--e2e-batch", help="Batch of the end-to-end run (default: the smallest --batch)."
        ),
        max_frames: int | None = typer.Option(
            None, "--max-frames", help="Cap the end-to-end frames."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the synthetic inputs."),
        threads: int | None = typer.Option(
            None, "--threads", help="CPU threads for torch and ONNX Runtime (default: their own)."
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Report folder (default ./p2p-bench/<machine>-<date>/)."
        ),
    ) -> None:
        """Benchmark every backend/precision/batch (help text: HELP)."""
        import logging

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from p2p_deploy.bench.session import BenchArgs, run_bench, validate
        from p2p_deploy.media.video import quiet_native_logs

        quiet_native_logs()  # an unreadable --video is one line, without FFmpeg's chatter

        args = BenchArgs(
            checkpoint=checkpoint,
            onnx=list(onnx),
            engine=list(engine),
            backends=_str_list(backends),
            batch=_int_list(batch),
            warmup=warmup,
            duration=duration,
            min_iters=min_iters,
            device=device,
            test_norm=test_norm,
            folder=folder,
            video=video,
            e2e_batch=e2e_batch,
            max_frames=max_frames,
            seed=seed,
            threads=threads,
            out=out,
        )
        validate(args)  # user errors before the progress bar draws anything
        console = Console(stderr=True)
        logging.getLogger("p2p_deploy.bench.harness").setLevel(logging.WARNING)  # the bar says it
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("planning", total=None)
            started = [False]

            def on_plan(total: int) -> None:
                progress.update(task, total=total, description="timing")

            def on_progress(line: str) -> None:
                if started[0]:
                    progress.advance(task)
                started[0] = True
                progress.update(task, description=line)

            report, paths = run_bench(args, on_progress=on_progress, on_plan=on_plan)
        for line in report["conclusions"]:
            typer.echo(f"- {line}")
        for s in report["skipped"]:
            typer.echo(f"  not measured: {s['label']}: {s['reason']}")
        typer.echo(f"report: {paths['md']}")
        typer.echo(f"json:   {paths['json']}")
