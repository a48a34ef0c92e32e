"""`p2p run`: translate an image, a folder of images/videos, or a video with an exported model.

Only typer and the standard library at import time; the runtime is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

RESIZE_HELP = (
    "How frames are fitted to the model's square input: stretch (resize, aspect not kept), "
    "pad (letterbox, padding cropped off the output), crop (centre square only)."
)


# One paragraph per string: rich help keeps a docstring's single line breaks as hard breaks.
HELP = (
    "Translate images and videos with an exported model.\n\n"
    "Outputs mirror the input tree in the output folder; videos keep frame count and rate. "
    "Existing outputs are skipped (--overwrite redoes them); writes are atomic. Inputs that "
    "fail are listed one per line and in OUT/failures.json. Exit code: 0 all done, 2 some "
    "failed, 1 nothing could be processed or the model could not load."
)


def register(app: typer.Typer) -> None:
    @app.command("run", help=HELP)
    def run(
        input: Path = typer.Argument(
            ...,
            metavar="INPUT",
            help="An image, a folder (recursive: jpg jpeg png bmp webp tif tiff, mp4 avi mov mkv) "
            "or a video.",
        ),
        engine: Path = typer.Option(
            ...,
            "--engine",
            "-e",
            help="The model: .plan/.engine (TensorRT), .onnx (ONNX Runtime, or OpenVINO on the"
            " CPU), .xml (OpenVINO IR), or a run folder / .safetensors / latest_net_G.pth"
            " (PyTorch).",
        ),
        out: Path | None = typer.Option(
            None,
            "--out",
            "-o",
            help="Output folder.",
            show_default="<input>_p2p beside the input",
        ),
        backend: str = typer.Option(
            "auto",
            help="auto (by the model's extension; an fp32/INT8 .onnx runs on OpenVINO on the CPU"
            " when it is installed), tensorrt, onnxruntime, openvino or torch.",
        ),
        device: str | None = typer.Option(
            None, help="cpu, cuda or cuda:N.", show_default="the GPU when there is one"
        ),
        batch: int = typer.Option(1, "--batch", "-b", min=1, help="Frames per model call."),
        resize: str = typer.Option("stretch", help=RESIZE_HELP),
        keep_size: bool = typer.Option(
            True,
            "--keep-size/--model-size",
            help="Write outputs at the input's size, or at the model's size.",
        ),
        side_by_side: bool = typer.Option(
            False, "--side-by-side", help="Write input and output next to each other."
        ),
        codec: str = typer.Option(
            "mp4v",
            help="FourCC of output videos (mp4v works with opencv-python; see `p2p doctor`).",
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Redo outputs that already exist (default: skip them)."
        ),
        test_norm: str | None = typer.Option(
            None,
            help="Torch runner only: stats (per-image statistics, the paper) or running.",
            show_default="from the checkpoint",
        ),
        precision: str | None = typer.Option(
            None,
            help="Torch runner: fp32 or fp16 (CUDA). OpenVINO: fp32 or bf16 (the inference"
            " precision hint, for CPUs with AVX512_BF16/AMX).",
            show_default="fp16 on CUDA, fp32 on CPU",
        ),
        cuda_graphs: bool = typer.Option(
            False, "--cuda-graphs", help="Capture CUDA graphs per batch size (torch, TensorRT)."
        ),
        compile: bool = typer.Option(
            False, "--compile", help="Torch runner only: torch.compile the generator."
        ),
        threads: int | None = typer.Option(
            None,
            min=1,
            help="ONNX Runtime and OpenVINO: inference threads.",
            show_default="physical cores",
        ),
        max_pixels: int = typer.Option(
            40_000_000, min=1, help="Refuse (and list as failed) images with more pixels."
        ),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show a progress bar."
        ),
        summary_json: Path | None = typer.Option(None, help="Also write the summary as JSON here."),
    ) -> None:
        """Translate images and videos with an exported model (help text: HELP)."""
        _run(**locals())


def _options(kw: dict) -> dict:
    """Runner options that apply to the backend (others are rejected with a clear line)."""
    torch_only = {
        "test_norm": kw["test_norm"],
        "precision": kw["precision"],
        "compile": kw["compile"] or None,
    }
    ort_only = {"threads": kw["threads"]}
    openvino = {"threads": kw["threads"], "precision": kw["precision"]}
    return {"torch": torch_only, "onnxruntime": ort_only, "openvino": openvino, "tensorrt": {}}


def _run(**kw) -> None:  # noqa: C901 - a linear script of the command's steps
    import signal

    from p2p_deploy.errors import P2PError
    from p2p_deploy.media.resize import RESIZE_MODES
    from p2p_deploy.media.video import fourcc, quiet_native_logs
    from p2p_deploy.pipeline.options import RunOptions
    from p2p_deploy.pipeline.run import prepare
    from p2p_deploy.runners.factory import auto_backend, open_runner

    quiet_native_logs()  # bad inputs are reported one line each, not with FFmpeg's chatter
    if kw["resize"] not in RESIZE_MODES:
        raise P2PError(f"--resize must be one of {', '.join(RESIZE_MODES)}, got {kw['resize']!r}.")
    fourcc(kw["codec"])  # a DataError (one line) unless it is a four-character code
    opts = RunOptions(
        batch=kw["batch"],
        resize=kw["resize"],
        keep_size=kw["keep_size"],
        side_by_side=kw["side_by_side"],
        codec=kw["codec"],
        overwrite=kw["overwrite"],
        max_pixels=kw["max_pixels"],
    )
    prepared = prepare(kw["input"], kw["out"], opts)
    plan = prepared.plan
    if not plan.jobs:
        raise P2PError(
            f"{kw['input']}: no images or videos found ({len(plan.ignored)} other files ignored)."
        )
    if prepared.skipped:
        typer.echo(
            f"skipping {len(prepared.skipped)} existing outputs in {plan.out_dir} "
            "(--overwrite redoes them)",
            err=True,
        )
    if not prepared.work:
        from p2p_deploy.pipeline.summary import RunSummary, write_failures

        write_failures(plan.out_dir, RunSummary())  # nothing failed this time: drop a stale list
        typer.echo(
            f"nothing to do: all {len(prepared.skipped)} outputs already exist in {plan.out_dir}",
            err=True,
        )
        return

    kind = auto_backend(kw["engine"], kw["device"]) if kw["backend"] == "auto" else kw["backend"]
    mine = _options(kw).get(kind, {})
    chosen = {k: v for k, v in mine.items() if v is not None}
    for other, values in _options(kw).items():
        bad = [k for k, v in values.items() if v is not None and k not in mine]
        if other != kind and bad:
            raise P2PError(
                f"--{bad[0].replace('_', '-')} applies to the {other} runner, not {kind}."
            )
    if kw["cuda_graphs"]:
        chosen["cuda_graphs"] = True
        if kind in ("onnxruntime", "openvino"):
            raise P2PError(f"--cuda-graphs applies to the torch and tensorrt runners, not {kind}.")

    # A `kill` (SIGTERM) unwinds like Ctrl-C: threads stop, half-written videos are removed.
    def _term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        with open_runner(kw["engine"], kind, kw["device"], **chosen) as runner:
            typer.echo(f"model: {kw['engine']} ({runner.describe()})", err=True)
            summary = _with_progress(prepared, runner, opts, kw["progress"])
    finally:
        signal.signal(signal.SIGTERM, old)

    typer.echo(summary.line(), err=True)
    if summary.failures:
        typer.echo(f"failures listed in {plan.out_dir / 'failures.json'}", err=True)
    typer.echo(f"outputs in {plan.out_dir}", err=True)
    if kw["summary_json"] is not None:
        from p2p_deploy.atomic import write_json

        write_json(kw["summary_json"], summary.to_dict())
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _with_progress(prepared, runner, opts, show: bool):
    """run_pipeline under a rich progress bar (frames, frames/s) on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    from p2p_deploy.pipeline.run import run_pipeline

    console = Console(stderr=True, soft_wrap=True)  # one line per failure, never wrapped

    def failure(reason: str) -> None:
        console.print(f"failed: {reason}", markup=False, highlight=False)

    if not show:
        return run_pipeline(prepared, runner, opts, on_failure=failure)

    class FpsColumn(ProgressColumn):
        def render(self, task) -> Text:  # frames per second over rich's speed window
            return Text(f"{task.speed or 0.0:6.1f} fps")

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        FpsColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("frames", total=prepared.expected_frames or None)
        return run_pipeline(
            prepared, runner, opts, on_frame=lambda n: bar.advance(task, n), on_failure=failure
        )
