"""`p2p train`: train a pix2pix generator (heavy imports stay inside the command)."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = (
    "Train pix2pix (U-Net generator + 70x70 PatchGAN) on synthetic facades or a data folder.\n\n"
    "Writes RUN_DIR/checkpoints/{latest,best,epoch_NNNN}/generator.safetensors (+ .json: what "
    "`p2p export` and `p2p run` read), losses.csv, val.csv, loss_curve.png, samples/*.png, "
    "TensorBoard logs in tb/, and the resolved config (config.json, config.toml). Data "
    "(--data): `synthetic` (default, generated on the fly), an aligned folder (train/, val/ "
    "splits of A|B images, photo left = A) or a folder with paired A/ and B/ subfolders. "
    "Options resolve as: defaults < --config FILE.toml < flags (with --resume, the run's "
    "saved config.json comes between the defaults and the file). Several processes: `torchrun "
    "--nproc-per-node N -m p2p_deploy train ...` (gloo on CPU, nccl on CUDA)."
)


# Every option defaults to None so that only flags actually given override --config; the real
# defaults are therefore written into the help text. Their "[" is escaped ("\\[default: 64]"):
# rich reads an unescaped "[default: 64]" as a markup tag and drops it from --help.


def register(app: typer.Typer) -> None:
    @app.command("train", help=HELP)
    def train_cmd(
        data: str | None = typer.Option(
            None, help="'synthetic' or a data folder. \\[default: synthetic]"
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Run folder. \\[default: runs/p2p]"
        ),
        config: Path | None = typer.Option(
            None, "--config", help="TOML file with any option (keys as flags, - or _)."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue the run in --out from checkpoints/latest."
        ),
        direction: str | None = typer.Option(
            None, help="AtoB or BtoA (label->photo on facades). \\[default: BtoA]"
        ),
        image_size: int | None = typer.Option(
            None, help="Crop size; downsamplings follow (256->8). \\[default: 256]"
        ),
        ngf: int | None = typer.Option(None, help="Generator width. \\[default: 64]"),
        ndf: int | None = typer.Option(None, help="Discriminator width. \\[default: 64]"),
        norm: str | None = typer.Option(None, help="batch or instance. \\[default: batch]"),
        dropout: bool | None = typer.Option(
            None, "--dropout/--no-dropout", help="Dropout in the decoder. \\[default: on]"
        ),
        n_layers_d: int | None = typer.Option(
            None, help="PatchGAN stride-2 layers (3 = 70x70). \\[default: 3]"
        ),
        gan_mode: str | None = typer.Option(
            None, help="vanilla (BCE) or lsgan (MSE). \\[default: vanilla]"
        ),
        lambda_l1: float | None = typer.Option(
            None, help="Weight of the L1 term. \\[default: 100]"
        ),
        lr: float | None = typer.Option(None, help="Adam learning rate. \\[default: 2e-4]"),
        beta1: float | None = typer.Option(None, help="Adam beta1. \\[default: 0.5]"),
        epochs: int | None = typer.Option(
            None, help="Epochs at the initial rate. \\[default: 100]"
        ),
        epochs_decay: int | None = typer.Option(
            None, help="Epochs of linear decay to 0. \\[default: 100]"
        ),
        batch_size: int | None = typer.Option(None, help="Batch size per process. \\[default: 1]"),
        max_steps: int | None = typer.Option(
            None, help="Stop after N optimiser steps (0 = no limit). \\[default: 0]"
        ),
        seed: int | None = typer.Option(
            None, help="Seed of init, data order, jitter, dropout. \\[default: 0]"
        ),
        jitter: bool | None = typer.Option(
            None,
            "--jitter/--no-jitter",
            help="Resize to 286/256 x size and random-crop. \\[default: on]",
        ),
        flip: bool | None = typer.Option(
            None, "--flip/--no-flip", help="Random horizontal mirror. \\[default: on]"
        ),
        device: str | None = typer.Option(None, help="auto, cpu or cuda. \\[default: auto]"),
        amp: bool | None = typer.Option(
            None, "--amp/--no-amp", help="Mixed precision (CUDA only). \\[default: off]"
        ),
        num_workers: int | None = typer.Option(
            None, help="Data-loader worker processes. \\[default: 0]"
        ),
        log_every: int | None = typer.Option(
            None, help="Log losses every N steps. \\[default: 50]"
        ),
        sample_every: int | None = typer.Option(
            None, help="Sample grid PNG every N steps. \\[default: 500]"
        ),
        save_every: int | None = typer.Option(
            None, help="checkpoints/epoch_NNNN every N epochs. \\[default: 5]"
        ),
        checkpoint_every: int | None = typer.Option(
            None, help="Also update checkpoints/latest every N steps (0 = epoch ends only)."
        ),
        synthetic_train: int | None = typer.Option(
            None, help="Synthetic training pairs. \\[default: 400]"
        ),
        synthetic_val: int | None = typer.Option(None, help="Synthetic val pairs. \\[default: 20]"),
        max_val: int | None = typer.Option(
            None, help="Score at most N val pairs per epoch. \\[default: 100]"
        ),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show the live progress bar."
        ),
    ) -> None:
        import logging

        from p2p_deploy.train.config import TrainConfig, load_toml, read_run_config, resolve_config

        skip = ("config", "resume", "progress", "logging", "resolve_config", "read_run_config")
        flags = {
            k: v
            for k, v in locals().items()
            if k not in (*skip, "skip", "TrainConfig", "load_toml") and v is not None
        }
        if "out" in flags:
            flags["out"] = str(flags["out"])
        base: dict = {}
        if resume:
            # The run folder comes from the flags or the file given now (an `out` in the TOML
            # must find its run), then the default.
            file_out = load_toml(config).get("out") if config is not None else None
            out_dir = Path(flags.get("out") or file_out or TrainConfig.out)
            if (out_dir / "config.json").is_file():
                # defaults < the run's own resolved config < --config file < flags.
                base = read_run_config(out_dir / "config.json").to_dict()
        cfg = resolve_config(config, flags, base)
        interrupted = False
        try:
            _run(cfg, resume, progress, logging.getLogger("p2p_deploy.cli.train"))
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            # The generic Ctrl-C line says "run the same command again", but without --resume
            # `p2p train` refuses a run folder that holds a run: say what to type instead. Exit
            # outside the except block, so the generic line (printed for an exit raised while
            # handling a KeyboardInterrupt) does not follow this one.
            typer.echo(_interrupted_message(Path(cfg.out)), err=True)
            raise typer.Exit(130)


def _interrupted_message(out: Path) -> str:
    """What a Ctrl-C left in ``out`` and how to continue from it."""
    import json

    sidecar = out / "checkpoints" / "latest" / "generator.json"
    try:
        step = json.loads(sidecar.read_text()).get("step")
    except (OSError, ValueError):
        step = None
    if step is None:
        return f"interrupted: no checkpoint was saved in {out} yet; start the run again."
    return (
        f"interrupted: {out / 'checkpoints' / 'latest'} holds step {step}; run the same "
        "command with --resume to continue from it."
    )


def _run(cfg, resume: bool, progress: bool, log) -> None:  # noqa: ANN001 - torch-free signature
    import os

    from rich.console import Console
    from rich.logging import RichHandler
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from p2p_deploy.train.loop import train

    rank0 = int(os.environ.get("RANK", "0")) == 0
    console = Console(stderr=True)
    if not (progress and rank0 and console.is_terminal):
        result = train(cfg, resume=resume)
    else:
        import logging

        bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        )
        root = logging.getLogger()
        handler = RichHandler(console=console, show_path=False, show_time=False)
        old = root.handlers[:]
        root.handlers = [handler]
        state = {"task": None, "t0": None, "s0": 0}
        try:
            with bar:

                def on_step(info) -> None:  # noqa: ANN001
                    import time

                    if state["task"] is None:
                        state["task"] = bar.add_task(
                            "train", total=info.total_steps, losses="", rate=""
                        )
                        state["t0"], state["s0"] = time.perf_counter(), info.step - 1
                    rate = (info.step - state["s0"]) / max(1e-9, time.perf_counter() - state["t0"])
                    losses = "D {d:.3f} G_GAN {g_gan:.3f} G_L1 {g_l1:.3f}".format(**info.losses)
                    bar.update(
                        state["task"], completed=info.step, losses=losses, rate=f"{rate:.2f} it/s"
                    )

                result = train(cfg, resume=resume, on_step=on_step)
        finally:
            root.handlers = old
    if rank0:
        val = (
            f"val L1 {result.val_l1:.4f}, PSNR {result.val_psnr:.2f} dB"
            if result.val_l1 is not None
            else "no validation data"
        )
        before = (
            f" (untrained: val L1 {result.val_l1_initial:.4f})"
            if result.val_l1_initial is not None
            else ""
        )
        log.info(
            "done: step %d, epoch %d, %s%s, %.1f s. Generator: %s",
            result.step,
            result.epoch,
            val,
            before,
            result.seconds,
            result.run_dir / "checkpoints" / "latest" / "generator.safetensors",
        )
