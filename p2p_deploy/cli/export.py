"""`p2p export`: a generator checkpoint -> ONNX (fp32, fp16) -> TensorRT plans (heavy imports
stay inside the command)."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = "\n\n".join(
    [
        "Export a generator to ONNX (and FP16 TensorRT), parity-checked against eager PyTorch.",
        "CHECKPOINT: a `p2p train` run folder (its latest generator), a generator.safetensors with"
        " its .json, or a canonical pytorch-CycleGAN-and-pix2pix latest_net_G.pth (architecture"
        " inferred from the tensors).",
        "Writes into --out: model.onnx (fp32); with --fp16 also model_fp16.onnx (fp16 weights and"
        " compute, float32 I/O with Casts unless --io fp16) and model_fp16.plan (TensorRT,"
        " strongly typed, FP16 verified from the engine); with --fp32-engine model_fp32.plan."
        " Each model has a <name>.json sidecar (architecture, precision, opset, I/O names and"
        " shapes, test norm,"
        " checkpoint sha256; engines also TensorRT version, GPU, compute capability, batch"
        " profile)."
        " ONNX: opset >= 17, tensors `input`/`output` of shape (N, 3, S, S), N dynamic, values in"
        " [-1, 1].",
        "Parity (unless --skip-parity): every ONNX runs in ONNX Runtime (CPU) against eager torch"
        " in the same test-norm mode at batch 1 and 3: fp32 max abs error <= 1e-4, fp16 PSNR"
        " >= 40 dB;"
        " a failure exits 1 and names the model and the figure.",
        "With --int8 also model_int8.onnx: a QDQ graph (every Conv and ConvTranspose int8, weights"
        " per channel, activations symmetric signed int8; norms, activations and the output"
        " float), calibrated on --calib DIR (any folder `p2p run` accepts) or by default on the"
        " checkpoint's own kind of data (synthetic facades for a synthetic run). Quality gate:"
        " PSNR against the fp32 model on held-out images (never the calibration ones) >= 35 dB,"
        " else exit 1 with the figure and no model_int8.onnx. With TensorRT and a GPU also"
        " model_int8.plan (explicit quantization, int8 verified from the engine, same gate). Runs"
        " fastest on CPUs with OpenVINO (`p2p run --backend openvino`).",
        "Without TensorRT the ONNX files are still written and one line says the engine was skipped"
        " (exit 0); with --engine or --fp32-engine a missing TensorRT is an error.",
    ]
)


def register(app: typer.Typer) -> None:
    @app.command("export", help=HELP, no_args_is_help=True)
    def export_cmd(
        checkpoint: Path = typer.Argument(
            ..., help="Run folder, .safetensors (+ .json), or canonical latest_net_G.pth."
        ),
        out: Path = typer.Option(Path("export_out"), "--out", "-o", help="Output folder."),
        fp16: bool = typer.Option(
            False, "--fp16", help="Also write model_fp16.onnx and the FP16 TensorRT engine."
        ),
        io: str = typer.Option(
            "fp32", "--io", help="I/O dtype of the fp16 model: fp32 (Casts in the graph) or fp16."
        ),
        opset: int = typer.Option(17, "--opset", help="ONNX opset (17 or newer)."),
        batch: str = typer.Option(
            "1:4:16",
            "--batch",
            help="TensorRT batch profile MIN:OPT:MAX (max = Triton max_batch_size).",
        ),
        test_norm: str | None = typer.Option(
            None,
            "--test-norm",
            help="stats: per-image statistics, the paper's test-time behaviour (default for"
            " batch norm); running: eval-mode running averages.",
        ),
        engine: bool | None = typer.Option(
            None,
            "--engine/--no-engine",
            help="--engine: the FP16 engine is required (implies --fp16; error without"
            " TensorRT). --no-engine: skip engines silently. Default: build it with --fp16"
            " when TensorRT is installed.",
        ),
        fp32_engine: bool = typer.Option(
            False, "--fp32-engine", help="Also build model_fp32.plan (requires TensorRT)."
        ),
        workspace: float = typer.Option(
            4.0, "--workspace", help="TensorRT workspace limit in GiB."
        ),
        timing_cache: Path | None = typer.Option(
            None,
            "--timing-cache",
            help="TensorRT timing cache file: read if present, updated after each build.",
        ),
        version_compatible: bool = typer.Option(
            False,
            "--version-compatible",
            help="Build a version-compatible engine (runs on later TensorRT versions).",
        ),
        hardware_compatible: bool = typer.Option(
            False,
            "--hardware-compatible",
            help="Build for all Ampere and newer GPUs (AMPERE_PLUS).",
        ),
        triton: Path | None = typer.Option(
            None,
            "--triton",
            help="Also write a Triton model repository here (DIR/p2p_generator/config.pbtxt,"
            " 1/model.plan or 1/model.onnx).",
        ),
        triton_name: str = typer.Option(
            "p2p_generator", "--triton-name", help="Model name in the Triton repository."
        ),
        skip_parity: bool = typer.Option(
            False, "--skip-parity", help="Skip the ONNX Runtime parity checks."
        ),
        int8: bool = typer.Option(
            False, "--int8", help="Also write model_int8.onnx (QDQ, quality-gated; see above)."
        ),
        calib: Path | None = typer.Option(
            None,
            "--calib",
            help="INT8 calibration images (a folder); default: the checkpoint's own kind of"
            " data (synthetic facades for a synthetic run). The last images (up to 8, at most a"
            " fifth) are held out for the quality gate.",
        ),
        calib_count: int = typer.Option(
            32, "--calib-count", help="How many images INT8 calibration uses."
        ),
    ) -> None:
        from rich.console import Console

        from p2p_deploy.export.command import run_export

        console = Console(stderr=True)
        int8_opts = None
        if int8 or calib is not None:
            from p2p_deploy.cli.calibration import synthetic_input
            from p2p_deploy.export.int8_export import Int8Options

            int8_opts = Int8Options(
                calib_dir=calib, calib_count=calib_count, synthetic=synthetic_input
            )
        if test_norm is not None and test_norm not in ("stats", "running"):
            raise typer.BadParameter("use stats or running.", param_hint="--test-norm")
        with console.status("exporting") as status:
            result = run_export(
                checkpoint,
                out,
                fp16=fp16,
                io=io,
                opset=opset,
                batch=batch,
                test_norm=test_norm,
                engine=engine,
                fp32_engine=fp32_engine,
                workspace_gib=workspace,
                timing_cache=timing_cache,
                version_compatible=version_compatible,
                hardware_compatible=hardware_compatible,
                triton_dir=triton,
                triton_model_name=triton_name,
                skip_parity=skip_parity,
                on_step=lambda msg: status.update(msg),
                int8=int8_opts,
            )
        for report in result.parity:
            typer.echo(f"parity  {report.summary()}")
        if result.int8 is not None:
            q = result.int8
            typer.echo(
                f"int8    {q.gate.summary()}: ok; calibrated on {len(q.calibration.calib)} images"
                f" ({q.calibration.source})"
            )
        for note in result.notes:
            typer.echo(note)
        for path in result.models:
            typer.echo(f"wrote   {path}")
        if triton is not None:
            typer.echo(f"triton  {result.files[-1]}")
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
        typer.echo(f"done in {sum(result.seconds.values()):.1f} s ({stages})")
