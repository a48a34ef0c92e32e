"""`p2p bench`: every backend and precision side by side, written up as a report.

Only typer and the standard library are imported at module level (``p2p --help`` stays fast);
the harness (torch, onnxruntime, matplotlib) is imported inside the command.
"""

from __future__ import annotations

import typer

# One paragraph per string: rich help keeps a docstring's single line breaks as hard breaks.
HELP = (
    "Benchmark every backend/precision/batch the models and this machine allow.\n\n"
    "Writes report.md (table + conclusions), report.json (schema version 1) and latency / "
    "throughput plots. Latency p50/p90/p99 per row, throughput, speedup over eager torch fp32 "
    "at the same batch (same run), max abs error and PSNR against it, peak memory; with "
    "--folder or --video also the end-to-end pipeline fps and its stage times."
)


def register(app: typer.Typer) -> None:
    from p2p_deploy.bench.options import BenchArgs
    from p2p_deploy.cli.dataclass_options import build, parameters, with_parameters
    from p2p_deploy.cli.usage import PlainUsageCommand

    def bench(**values: object) -> None:
        _bench(build(BenchArgs, values))

    app.command("bench", help=HELP, cls=PlainUsageCommand)(
        with_parameters(bench, parameters(BenchArgs))
    )


def _bench(args) -> None:  # noqa: ANN001 - BenchArgs, imported lazily above
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

    from p2p_deploy.bench.session import run_bench, validate
    from p2p_deploy.media.video import quiet_native_logs

    quiet_native_logs()  # an unreadable --video is one line, without FFmpeg's chatter

    validate(args)  # user errors before the progress bar draws anything
    console = Console(stderr=True)
    logging.getLogger("p2p_deploy.bench.harness").setLevel(logging.WARNING)  # the bar says it
    # No bar where stderr is no terminal: rich would only leave an empty line there (before an
    # `error:` line, say).
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
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
