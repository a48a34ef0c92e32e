"""`p2p run`: translate an image, a folder of images/videos, or a video with an exported model.

Only typer and the standard library at import time; the runtime is imported inside the command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import typer

from p2p_deploy.options import device_grammar, option, validate

# Kept equal to runners.factory.BACKENDS and media.resize.RESIZE_MODES (a test checks): this
# module stays cheap to import for `p2p --help`.
BACKENDS = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
RESIZE_MODES = ("stretch", "pad", "crop", "native")
PRECISIONS = ("fp32", "fp16", "bf16")

RESIZE_HELP = (
    "How frames are fitted to the model: stretch (resize to its square, aspect not kept), "
    "pad (letterbox, padding cropped off the output), crop (centre square only), or native: "
    "each frame at its own resolution (the generator is fully convolutional), reflect-padded "
    "to the next multiple of the model's stride 2^downsamplings, padding cropped off: outputs "
    "have the input's exact size and full detail. Frames larger than the model takes are run "
    "in overlapping, feathered tiles (--max-tile)."
)
MAX_TILE_HELP = (
    "--resize native only: the largest frame run whole, HxW or S; larger frames are split "
    "into overlapping tiles of at most this size, blended back, so memory stays bounded. auto: "
    "the largest size the model takes (a TensorRT profile's or a --spatial export's max, the "
    "square of a fixed-size export; 2048x2048 for a checkpoint on torch). off: no tiling; a "
    "frame beyond the model's largest size fails, one line, before it is run."
)


# One paragraph per string: rich help keeps a docstring's single line breaks as hard breaks.
HELP = (
    "Translate images and videos with an exported model.\n\n"
    "Outputs mirror the input tree in the output folder; videos keep frame count and rate. "
    "Existing outputs are skipped (--overwrite redoes them); writes are atomic. Inputs that "
    "fail are listed one per line and in OUT/failures.json. Exit code: 0 all done, 2 some "
    "failed, 1 nothing could be processed or the model could not load, 64 a bad flag."
)


@dataclass(frozen=True)
class RunArgs:
    """Every flag of ``p2p run``, built once by the command and passed on whole."""

    input: Path = option(
        argument=True,
        metavar="INPUT",
        help="An image, a folder (recursive: jpg jpeg png bmp webp tif tiff, mp4 avi mov mkv) "
        "or a video.",
    )
    engine: Path = option(
        short="-e",
        help="The model: .plan/.engine (TensorRT), .onnx (ONNX Runtime, or OpenVINO on the"
        " CPU), .xml (OpenVINO IR), or a run folder / .safetensors / latest_net_G.pth"
        " (PyTorch).",
    )
    out: Path | None = option(
        None, short="-o", help="Output folder.", shown="<input>_p2p beside the input"
    )
    backend: str = option(
        "auto",
        choices=BACKENDS,
        help="auto (by the model's extension; an fp32/INT8 .onnx runs on OpenVINO on the CPU"
        " when it is installed), tensorrt, onnxruntime, openvino or torch.",
    )
    device: str | None = option(
        None,
        help="cpu, cuda or cuda:N.",
        shown="the GPU when there is one",
        check=device_grammar(allow_auto=False),
    )
    batch: int = option(1, short="-b", min=1, max=4096, help="Frames per model call.")
    resize: str = option("stretch", choices=RESIZE_MODES, help=RESIZE_HELP)
    max_tile: str = option("auto", help=MAX_TILE_HELP)
    keep_size: bool = option(
        True,
        flag="--keep-size/--model-size",
        help="Write outputs at the input's size, or at the model's size.",
    )
    side_by_side: bool = option(
        False, negative=False, help="Write input and output next to each other."
    )
    codec: str = option(
        "mp4v",
        check=lambda c: None if len(c) == 4 else "not a four-character code (e.g. mp4v, MJPG)",
        help="FourCC of output videos (mp4v works with opencv-python; see `p2p doctor`)."
    )
    overwrite: bool = option(
        False, negative=False, help="Redo outputs that already exist (default: skip them)."
    )
    test_norm: str | None = option(
        None,
        choices=("stats", "running"),
        help="Torch runner only: stats (per-image statistics, the paper) or running.",
        shown="from the checkpoint",
    )
    precision: str | None = option(
        None,
        choices=PRECISIONS,
        help="Torch runner: fp32 or fp16 (CUDA). OpenVINO: fp32 or bf16 (the inference"
        " precision hint, for CPUs with AVX512_BF16/AMX).",
        shown="fp16 on CUDA, fp32 on CPU",
    )
    cuda_graphs: bool = option(
        False, negative=False, help="Capture CUDA graphs per batch size (torch, TensorRT)."
    )
    compile: bool = option(
        False,
        negative=False,
        help="Torch runner only: torch.compile the generator for one batch shape (the last"
        " batch is padded), compiled before the first frame; compiled kernels are cached on"
        " disk for the next run. Pays on long runs on a GPU.",
    )
    workers: int | None = option(
        None,
        min=1,
        help="Threads that decode inputs and encode outputs (one pool shared by both).",
        shown="the usable CPU cores",
    )
    threads: int | None = option(
        None, min=1, help="ONNX Runtime and OpenVINO: inference threads.", shown="physical cores"
    )
    max_pixels: int = option(
        40_000_000, min=1, help="Refuse (and list as failed) images with more pixels."
    )
    progress: bool = option(True, help="Show a progress bar.")
    summary_json: Path | None = option(None, help="Also write the summary as JSON here.")

    def __post_init__(self) -> None:
        validate(self)  # every value checked where it is parsed: one line, exit 64

    def runner_options(self) -> dict[str, dict[str, object]]:
        """Options per backend: those that apply to another backend are rejected by name."""
        return {
            "torch": {
                "test_norm": self.test_norm,
                "precision": self.precision,
                "compile": self.compile or None,
                "static_batch": self.batch if self.compile else None,
            },
            "onnxruntime": {"threads": self.threads},
            "openvino": {"threads": self.threads, "precision": self.precision},
            "tensorrt": {},
        }


def register(app: typer.Typer) -> None:
    from p2p_deploy.cli.dataclass_options import build, parameters, with_parameters
    from p2p_deploy.cli.usage import PlainUsageCommand

    def run(**values: object) -> None:
        _run(build(RunArgs, values))

    app.command("run", help=HELP, cls=PlainUsageCommand)(with_parameters(run, parameters(RunArgs)))


def _run(args: RunArgs) -> None:  # noqa: C901 - a linear script of the command's steps
    from p2p_deploy.errors import P2PError, UsageError
    from p2p_deploy.media.resize import NATIVE
    from p2p_deploy.media.video import quiet_native_logs
    from p2p_deploy.models.opening import open_model
    from p2p_deploy.pipeline.options import RunOptions
    from p2p_deploy.pipeline.run import prepare
    from p2p_deploy.runners.factory import choose_backend, open_runner
    from p2p_deploy.runners.tiling import check_max_tile

    quiet_native_logs()  # bad inputs are reported one line each, not with FFmpeg's chatter
    try:
        check_max_tile(args.max_tile)
    except P2PError as exc:
        raise UsageError(str(exc)) from None
    if args.max_tile.strip().lower() != "auto" and args.resize != NATIVE:
        raise UsageError("--max-tile applies to --resize native.")
    model = open_model(args.engine)  # read once: the runner takes it as it is
    try:
        kind = choose_backend(model, args.backend, args.device)
    except P2PError as exc:  # e.g. an .onnx on --backend torch: the command line must change
        raise UsageError(str(exc)) from None
    allowed = {"torch": ("fp32", "fp16"), "openvino": ("fp32", "bf16")}.get(kind, ())
    if args.precision is not None and allowed and args.precision not in allowed:
        raise UsageError(
            f"--precision {args.precision!r}: the {kind} runner takes {' or '.join(allowed)}."
        )
    per_backend = args.runner_options()
    mine = per_backend.get(kind, {})
    chosen = {k: v for k, v in mine.items() if v is not None}
    for other, values in per_backend.items():
        bad = [k for k, v in values.items() if v is not None and k not in mine]
        if other != kind and bad:
            raise UsageError(
                f"--{bad[0].replace('_', '-')} applies to the {other} runner, not {kind}."
            )
    if args.cuda_graphs:
        if kind in ("onnxruntime", "openvino"):
            raise UsageError(
                f"--cuda-graphs applies to the torch and tensorrt runners, not {kind}."
            )
        chosen["cuda_graphs"] = True
    if args.summary_json is not None:  # before the work, not after
        from p2p_deploy.atomic import check_writable_file
        from p2p_deploy.outputs import check_output_file, is_own_json
        from p2p_deploy.pipeline.summary import SUMMARY_FORMAT

        check_output_file(
            args.summary_json,
            "--summary-json",
            lambda p: is_own_json(p, SUMMARY_FORMAT, ("runner", "done", "skipped", "failed")),
            what="summary",
        )
        check_writable_file(args.summary_json, "--summary-json")
    opts = RunOptions(
        batch=args.batch,
        resize=args.resize,
        keep_size=args.keep_size,
        side_by_side=args.side_by_side,
        codec=args.codec,
        overwrite=args.overwrite,
        max_pixels=args.max_pixels,
        workers=args.workers,
        max_tile=args.max_tile,
    )
    prepared = prepare(args.input, args.out, opts)
    plan = prepared.plan
    if not plan.jobs and not plan.unreadable:
        from p2p_deploy.errors import named

        earlier = (
            f"; {len(plan.own_outputs)} output folder(s) of earlier runs not read: "
            + named([str(p) for p in plan.own_outputs])
            if plan.own_outputs
            else ""
        )
        raise P2PError(
            f"{args.input}: no images or videos found ({len(plan.ignored)} other files, "
            f"{len(plan.hidden)} hidden ignored{earlier})."
        )
    _check_out(plan, prepared, args.overwrite)
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

    # A `kill` (SIGTERM) unwinds like Ctrl-C (cli.sigterm_as_interrupt): threads stop,
    # half-written videos are removed.
    with open_runner(model, kind, args.device, **chosen) as opened:
        from p2p_deploy.pipeline.run import native_runner

        # --max-tile against the model, or a square mode it cannot take: one line, now.
        runner = native_runner(opened, opts)
        typer.echo(f"model: {args.engine} ({runner.describe()})", err=True)
        if args.compile or args.cuda_graphs or runner.device.startswith("cuda"):
            # Compile / autotune / capture now, so the first frames are not the slow ones.
            warm = runner.warmup(args.batch)  # the shape the run submits
            what = "compile and warm-up" if args.compile else "warm-up"
            typer.echo(f"{what}: {warm:.1f} s", err=True)
        summary = _with_progress(prepared, runner, opts, args.progress)

    from p2p_deploy.errors import one_line

    typer.echo(one_line(summary.line()), err=True)
    if summary.failures_error:  # e.g. a full disk: said in one line, the exit code stands
        typer.echo(f"error: {summary.failures_error}", err=True)
    elif summary.failures_file:
        typer.echo(f"failures listed in {summary.failures_file}", err=True)
    if plan.out_dir.is_dir():
        typer.echo(f"outputs in {plan.out_dir}", err=True)
    else:  # every input failed and no folder was made: nothing to point at
        typer.echo(f"nothing written ({plan.out_dir} not made)", err=True)
    if args.summary_json is not None:
        from p2p_deploy.atomic import write_json

        write_json(args.summary_json, summary.to_dict())
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _check_out(plan, prepared, overwrite: bool) -> None:  # noqa: ANN001 - pipeline types
    """Before any input is read: the output folder can be written (one line, exit 64, instead
    of one ``failed:`` line per input), and only outputs of p2p run are replaced or skipped
    as done: in a folder it did not make, a file at an output's name (or a ``failures.json``
    it did not write, anywhere) is the user's.

    Raises:
        UsageError: naming the folder and why.
    """
    from p2p_deploy.atomic import check_writable_dir
    from p2p_deploy.errors import UsageError, named
    from p2p_deploy.media.files import OUTPUT_MARKER
    from p2p_deploy.outputs import is_own_json, read_marker
    from p2p_deploy.pipeline.summary import FAILURES_NAME

    # The run writes OUT/failures.json when something fails and removes it when nothing
    # does, done or skipped alike: a file of the user's at that name must stop it first.
    failures = plan.out_dir / FAILURES_NAME
    if os.path.lexists(failures) and not is_own_json(failures, "", ("failed", "failures")):
        raise UsageError(
            f"{failures}: exists and is not a list of failures p2p run wrote; it is never "
            "overwritten or removed (choose another --out, or move it away)."
        )
    # Every folder p2p run writes into holds its marker from the first output on (default
    # `_p2p` folders made before the marker count as marked): in any other folder, a file at
    # an output's name is the user's. --overwrite would replace it; without --overwrite it
    # would be skipped and counted as "already there", which it is not.
    marked = read_marker(plan.out_dir, OUTPUT_MARKER) is not None
    if not marked and not plan.out_dir.name.endswith("_p2p"):
        if overwrite:
            theirs = [j.dst for j in prepared.work if hasattr(j, "dst") and os.path.lexists(j.dst)]
            doing = "--overwrite would replace"
        else:
            theirs = [j.dst for j in prepared.skipped]
            doing = "the run would skip, as if done,"
        if theirs:
            shown = named([str(p.relative_to(plan.out_dir)) for p in theirs])
            raise UsageError(
                f"{plan.out_dir}: {doing} {shown}, which p2p run did not write (the folder "
                "has no output marker); choose another --out."
            )
    if prepared.work:
        check_writable_dir(plan.out_dir, "--out")


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

    from p2p_deploy.errors import one_line
    from p2p_deploy.pipeline.run import run_pipeline

    console = Console(stderr=True, soft_wrap=True)  # one line per failure, never wrapped

    def failure(reason: str) -> None:  # a file name holding a newline stays on its line
        console.print(f"failed: {one_line(reason)}", markup=False, highlight=False)

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
        expected = [prepared.expected_frames]

        def add_total(n: int) -> None:  # each video's count, once the reader has opened it
            expected[0] += n
            bar.update(task, total=expected[0] or None)

        return run_pipeline(
            prepared,
            runner,
            opts,
            on_frame=lambda n: bar.advance(task, n),
            on_failure=failure,
            on_total=add_total,
        )
