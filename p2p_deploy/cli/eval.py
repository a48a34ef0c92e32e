"""`p2p eval`: score a model as deployed (same runners as `p2p run`) on a data split.

Only typer and the standard library at import time; bench.eval and the runners are imported
inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

HELP = (
    "Score a model as deployed on a data split: L1, PSNR (dB) and SSIM on [-1, 1], per image "
    "and on average.\n\n"
    "MODEL is anything `p2p run` takes (run folder, .safetensors, latest_net_G.pth, .onnx "
    "fp32/fp16/int8, .plan) and runs through the same runner. DATA/SPLIT holds aligned A|B "
    "images (or A/ and B/ folders); halves are resized to the model's size, or with --resize "
    "native kept at full resolution (outputs scored against full-resolution targets). The "
    "direction "
    "comes from --direction, else the model's card, else BtoA. Writes OUT/eval.json, "
    "OUT/eval.csv, and OUT/best.png / OUT/worst.png (input | output | target, best and worst "
    "by L1). With --baseline, both models score the same images and the report gives the "
    "difference per metric and the largest per-image drop. FID is not computed (see README)."
)


def register(app: typer.Typer) -> None:
    from p2p_deploy.cli.usage import PlainUsageCommand
    from p2p_deploy.options import checked, device_grammar, plain_name

    @app.command("eval", help=HELP, cls=PlainUsageCommand)
    def eval_cmd(
        model: Path = typer.Argument(..., metavar="MODEL", help="The model to score."),
        data: Path = typer.Option(..., "--data", help="Dataset folder holding the split."),
        split: str = typer.Option(
            "test",
            "--split",
            callback=checked("--split", check=plain_name),
            help="Split folder under DATA.",
        ),
        out: Path = typer.Option(Path("eval"), "--out", "-o", help="Report folder."),
        baseline: Path | None = typer.Option(
            None, "--baseline", help="A second model scored on the same images."
        ),
        limit: int | None = typer.Option(
            None,
            "--limit",
            callback=checked("--limit", min=1),
            help="Score only the first N pairs (by name).",
        ),
        direction: str | None = typer.Option(
            None,
            "--direction",
            callback=checked("--direction", choices=("AtoB", "BtoA")),
            help="AtoB or BtoA.",
            show_default="from the model's card, else BtoA",
        ),
        batch: int = typer.Option(
            4, "--batch", "-b", callback=checked("--batch", min=1), help="Images per model call."
        ),
        grid: int = typer.Option(
            4, "--grid", callback=checked("--grid", min=1), help="Rows in best.png and worst.png."
        ),
        device: str | None = typer.Option(
            None,
            help="cpu, cuda or cuda:N.",
            show_default="the runner's default",
            callback=checked("--device", check=device_grammar(allow_auto=False)),
        ),
        save_images: bool = typer.Option(
            False,
            "--save-images",
            help="Also write every output and target to OUT/outputs and OUT/targets (for FID).",
        ),
        overwrite: bool = typer.Option(
            False,
            "--overwrite",
            help="Replace a report of another evaluation (or files p2p eval did not write) "
            "in --out.",
        ),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show a progress bar."
        ),
        resize: str = typer.Option(
            "stretch",
            "--resize",
            help="stretch: both halves resized to the model's square (as validation does);"
            " native: each condition at its own resolution (reflect-padded to the model's"
            " stride, as `p2p run --resize native`; tiled beyond the largest size the model"
            " takes), its output scored against the full-resolution target.",
        ),
    ) -> None:
        from p2p_deploy.bench.eval import RESIZE_CHOICES, EvalOptions
        from p2p_deploy.errors import UsageError

        if resize not in RESIZE_CHOICES:
            raise UsageError(f"--resize must be stretch or native, got {resize!r}.")
        opts = EvalOptions(
            model=model,
            data=data,
            split=split,
            out=out,
            baseline=baseline,
            limit=limit,
            direction=direction,
            batch=batch,
            grid=grid,
            device=device,
            save_images=save_images,
            overwrite=overwrite,
            resize=resize,
        )
        _eval(opts, progress)


def _eval(opts, show: bool) -> None:  # noqa: ANN001 - EvalOptions, imported lazily
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from p2p_deploy.bench.eval import run_eval
    from p2p_deploy.errors import one_line

    console = Console(stderr=True, soft_wrap=True)  # one line per failure, never wrapped

    def failure(reason: str) -> None:
        console.print(f"failed: {one_line(reason)}", markup=False, highlight=False)

    if show:
        bar = Progress(
            TextColumn("eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        task = bar.add_task("eval", total=None)
        started: list[bool] = []

        def total(n: int) -> None:
            # Shown once the model and the pairs are open: an error before that (a missing
            # model, an empty split) is its one line, not under an empty bar.
            bar.update(task, total=n)
            bar.start()
            started.append(True)

        try:
            result = run_eval(
                opts,
                on_images=lambda n: bar.advance(task, n),
                on_total=total,
                on_failure=failure,
            )
        finally:
            if started:  # a bar never shown prints nothing, not even rich's closing newline
                bar.stop()
    else:
        result = run_eval(opts, on_failure=failure)
    for line in summary_lines(result.to_dict()):
        typer.echo(one_line(line), err=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def summary_lines(report: dict) -> list[str]:
    """The human summary of an eval.json dict (a few lines)."""
    m = report["mean"]
    lines = [
        f"model: {report['model']} ({report['runner']}), {report['count']} images of "
        f"{report['data']}/{report['split']}, {report['direction']} ({report['direction_source']})",
        f"mean: L1 {m['l1']:.4f}, PSNR {m['psnr_db']:.2f} dB, SSIM {m['ssim']:.4f}"
        if m["l1"] is not None
        else "mean: no image could be scored",
    ]
    if report.get("failures"):
        lines.append(
            f"{len(report['failures'])} pair(s) failed, not scored (listed above and in "
            f"{report['outputs']['eval.json']})"
        )
    unpaired = report.get("unpaired") or []
    if unpaired:
        from p2p_deploy.errors import named

        names = named([Path(u["path"]).name for u in unpaired], 5)
        lines.append(f"unpaired: {len(unpaired)} file(s) without a partner, not scored: {names}")
    b = report.get("baseline")
    if b and b.get("difference"):
        bm, d, drop = b["mean"], b["difference"], b["largest_drop"]
        lines += [
            f"baseline: {b['model']} ({b['runner']}): L1 {bm['l1']:.4f}, PSNR "
            f"{bm['psnr_db']:.2f} dB, SSIM {bm['ssim']:.4f}",
            f"model - baseline: L1 {d['l1']:+.5f}, PSNR {d['psnr_db']:+.3f} dB, SSIM "
            f"{d['ssim']:+.5f}",
            "largest per-image drop: "
            + ", ".join(
                f"{k} {drop[k]['drop']:+.4g} ({drop[k]['name']})" for k in ("l1", "psnr_db", "ssim")
            ),
        ]
        agree = b.get("psnr_vs_baseline_db")
        if agree:
            lines.append(
                f"outputs model vs baseline: PSNR mean {agree['mean']:.2f} dB, "
                f"min {agree['min']:.2f} dB"
            )
    out = report["outputs"]
    lines.append(f"report: {out['eval.json']}, {out['eval.csv']}")
    if "best.png" in out:
        lines.append(f"grids (input | output | target): {out['best.png']}, {out['worst.png']}")
    return lines
