"""`p2p train`: train a pix2pix generator (heavy imports stay inside the command)."""

from __future__ import annotations

import inspect
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


def register(app: typer.Typer) -> None:
    # TrainConfig is imported from a torch-free module: its fields are the flags. Every option
    # defaults to None so that only flags actually given override --config; the help shows the
    # dataclass's defaults.
    from p2p_deploy.cli.dataclass_options import parameters, with_parameters
    from p2p_deploy.cli.usage import PlainUsageCommand
    from p2p_deploy.train.config import TrainConfig

    own = [
        param(
            "config",
            Path | None,
            typer.Option(
                None, "--config", help="TOML file with any option (keys as flags, - or _)."
            ),
        ),
        param(
            "resume",
            bool,
            typer.Option(
                False, "--resume", help="Continue the run in --out from checkpoints/latest."
            ),
        ),
        param(
            "progress",
            bool,
            typer.Option(True, "--progress/--no-progress", help="Show the live progress bar."),
        ),
    ]
    fields = parameters(TrainConfig, given_only=True)
    # --config and --resume right after --data and --out, as before.
    app.command("train", help=HELP, cls=PlainUsageCommand)(
        with_parameters(train_cmd, [*fields[:2], *own[:2], *fields[2:], own[2]])
    )


def param(name: str, annotation: object, info: object) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=info, annotation=annotation
    )


def train_cmd(config: Path | None, resume: bool, progress: bool, **flags: object) -> None:
    """Resolve the TrainConfig (defaults < run config < --config file < flags) and train."""
    import logging

    from p2p_deploy.deps import require_train
    from p2p_deploy.train.config import TrainConfig, load_toml, read_run_config, resolve_config

    require_train("p2p train", ("torch", "safetensors", "tensorboard"))

    given = {k: v for k, v in flags.items() if v is not None}
    base: dict = {}
    if resume:
        # The run folder comes from the flags or the file given now (an `out` in the TOML
        # must find its run), then the default.
        file_out = load_toml(config).get("out") if config is not None else None
        out_dir = Path(given.get("out") or file_out or TrainConfig.out)
        from p2p_deploy.models.layout import CONFIG_JSON

        if (out_dir / CONFIG_JSON).is_file():
            # defaults < the run's own resolved config < --config file < flags.
            base = read_run_config(out_dir / CONFIG_JSON).to_dict()
    cfg = resolve_config(config, given, base)
    interrupted: KeyboardInterrupt | None = None
    try:
        _run(cfg, resume, progress, logging.getLogger("p2p_deploy.cli.train"))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        interrupted = exc
    if interrupted is not None:
        # The generic Ctrl-C line says "run the same command again", but without --resume
        # `p2p train` refuses a run folder that holds a run: say what to type instead.
        from p2p_deploy.errors import EXIT_TERMINATED, Interrupted, Terminated

        message = _interrupted_message(Path(cfg.out))
        if isinstance(interrupted, Terminated):
            raise Interrupted(message.replace("interrupted:", "terminated (SIGTERM):", 1),
                              EXIT_TERMINATED)
        raise Interrupted(message)


def _interrupted_message(out: Path) -> str:
    """What a Ctrl-C or SIGTERM left in ``out`` and how to continue from it."""
    from p2p_deploy.errors import P2PError
    from p2p_deploy.models import layout
    from p2p_deploy.models.card import read_card

    latest = layout.checkpoint_dir(out)
    try:
        card = read_card(latest / layout.WEIGHTS_NAME)
    except P2PError:
        card = None
    step = card.training.step if card is not None and card.training is not None else None
    if step is None:
        return f"interrupted: no checkpoint was saved in {out} yet; start the run again."
    return (
        f"interrupted: {latest} holds step {step}; run the same command with --resume to "
        "continue from it."
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
        from p2p_deploy.models import layout

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
            layout.checkpoint_dir(result.run_dir) / layout.WEIGHTS_NAME,
        )
