"""`p2p export`: a generator checkpoint -> ONNX (fp32, fp16) -> TensorRT plans (heavy imports
stay inside the command)."""

from __future__ import annotations

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
        " Each model has a <name>.json card (architecture, precision, opset, I/O names and"
        " shapes, test norm,"
        " checkpoint sha256; engines also TensorRT version, GPU, compute capability, batch"
        " profile)."
        " ONNX: opset >= 17, tensors `input`/`output` of shape (N, 3, S, S), N dynamic, values in"
        " [-1, 1]; with --spatial MIN:OPT:MAX (N, 3, H, W), H and W dynamic multiples of the"
        " stride 2^downsamplings, parity-checked at MIN, OPT and MAX too, TensorRT profiles over"
        " H and W, INT8 calibrated at OPT and gated at every size (for `p2p run --resize"
        " native`).",
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
    from p2p_deploy.cli.dataclass_options import build, parameters, with_parameters
    from p2p_deploy.cli.usage import PlainUsageCommand
    from p2p_deploy.export.options import ExportOptions

    def export_cmd(**values: object) -> None:
        _export(build(ExportOptions, values))

    app.command("export", help=HELP, no_args_is_help=True, cls=PlainUsageCommand)(
        with_parameters(export_cmd, parameters(ExportOptions))
    )


def _export(opts) -> None:  # noqa: ANN001 - ExportOptions, imported lazily above

    from rich.console import Console

    from p2p_deploy.deps import require_train

    require_train("p2p export")  # before any import of torch: one line on a deploy install

    from p2p_deploy.export.command import run_export

    synthetic = None
    if opts.with_int8:  # export may not import train: the CLI hands it the synthetic drawer
        from p2p_deploy.cli.calibration import synthetic_input as synthetic

    # Output folders (locked while it runs), the Triton model folder and the INT8
    # calibration source are checked by the exporter before it writes anything.
    console = Console(stderr=True)
    with console.status("exporting") as status:
        result = run_export(opts, on_step=lambda msg: status.update(msg), synthetic=synthetic)
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
    if result.triton is not None:
        typer.echo(f"triton  {result.triton}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
    typer.echo(f"done in {sum(result.seconds.values()):.1f} s ({stages})")


