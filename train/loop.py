"""The pix2pix training loop (Isola et al. 2017), single process or DDP.

Per step: G(input) -> fake; D step on (input, target) vs (input, fake.detach()), loss halved;
G step on D(input, fake) (with the freshly updated D) + lambda * L1. Adam(lr, (beta1, 0.999));
``epochs`` at constant rate then ``epochs_decay`` linear decay to zero (canonical ``linear``).

Determinism: weights are initialised from ``seed``; the data order is a permutation of
``(seed, epoch)``; crops/flips are functions of ``(seed, epoch, index)``; the dropout RNG is
re-seeded every step from ``(seed, rank, step)``. So a resumed run needs no saved RNG stream:
the step counter and the position in the epoch (both in ``state.pt``) are enough, and a run that
is killed and resumed ends with the same weights as one that was not (on the same machine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from p2p_deploy.atomic import clean_stale_temps, write_json, write_text
from p2p_deploy.errors import CheckpointError, DataError, P2PError, first_line
from p2p_deploy.imaging import psnr
from p2p_deploy.media.images import write_image
from p2p_deploy.models import PatchDiscriminator, UNetGenerator, init_weights, layout
from p2p_deploy.models.card import ModelCard, TrainingInfo
from p2p_deploy.models.inference import default_test_norm, prepare_generator
from p2p_deploy.models.weights import read_weights
from p2p_deploy.train.checkpointing import load_state, recover, save_checkpoint
from p2p_deploy.train.config import TrainConfig, config_to_toml
from p2p_deploy.train.datasets import DataOptions, EpochSampler, batches_per_epoch, build_datasets
from p2p_deploy.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    init_distributed,
    shutdown,
)
from p2p_deploy.train.interrupt import StopEvent, stop_on_sigint
from p2p_deploy.train.losses import discriminator_loss, generator_losses
from p2p_deploy.train.metrics import RunLog
from p2p_deploy.train.plots import plot_loss_curve, sample_grid
from p2p_deploy.train.run_folder import check_out_folder, mark_run_folder

log = logging.getLogger(__name__)


class TrainingDiverged(P2PError):
    """A loss or a generator weight became NaN or infinite; training stopped without saving
    the bad state."""

    exit_code = 3


@dataclass
class StepInfo:
    """What the CLI's progress bar shows after each optimiser step."""

    step: int
    total_steps: int
    epoch: int
    losses: dict[str, float]


@dataclass
class TrainResult:
    """Summary of a finished (or stopped) run."""

    run_dir: Path
    step: int
    epoch: int
    resumed_from: int | None
    val_l1_initial: float | None
    val_l1: float | None
    val_psnr: float | None
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def pick_device(kind: str, info_local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when torch sees one, else CPU; ``cuda`` without a GPU is an error."""
    has_cuda = torch.cuda.is_available()
    if kind == "cuda" and not has_cuda:
        raise P2PError("--device cuda: torch sees no CUDA GPU on this machine (use --device cpu).")
    if kind == "cuda" or (kind == "auto" and has_cuda):
        return torch.device("cuda", info_local_rank)
    return torch.device("cpu")


def _step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)


def linear_decay(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """LR multiplier per epoch: 1 for ``epochs``, then linear to ~0 (canonical ``linear`` rule)."""
    return lambda e: 1.0 - max(0, e + 1 - epochs) / float(epochs_decay + 1)


@torch.no_grad()
def evaluate(
    generator: nn.Module,
    dataset: Any,
    norm: str,
    device: torch.device,
    max_images: int = 100,
    batch_size: int = 8,
) -> tuple[float, float]:
    """Val L1 (mean |fake - target| in [-1, 1] units) and mean PSNR (dB), with the generator
    prepared exactly as deployment runs it (``prepare_generator`` + the default test norm)."""
    model = prepare_generator(generator, default_test_norm(norm)).to(device)
    n = min(len(dataset), max_images)
    l1s: list[float] = []
    psnrs: list[float] = []
    for start in range(0, n, batch_size):
        items = [dataset[(0, i)] for i in range(start, min(n, start + batch_size))]
        x = torch.stack([it["input"] for it in items]).to(device)
        y = torch.stack([it["target"] for it in items]).to(device)
        fake = model(x).float()
        for f, t in zip(fake.cpu().numpy(), y.cpu().numpy(), strict=True):
            l1s.append(float(np.abs(f - t).mean()))
            psnrs.append(psnr(f, t))
    return float(np.mean(l1s)), float(np.mean(psnrs))


# The architecture keys a flag sets, as that flag (the discriminator's ``n_layers``:
# --n-layers-d); the others (channels, n_down) follow from these.
_ARCH_FLAGS = {
    "ngf": "--ngf",
    "norm": "--norm",
    "image_size": "--image-size",
    "dropout": "--dropout",
    "ndf": "--ndf",
    "n_layers": "--n-layers-d",
}


def _config_diffs(saved: Any, wanted: dict[str, Any]) -> list[str]:
    """``["--ngf 8 in the checkpoint, 16 now"]``: each architecture value that differs."""
    if not isinstance(saved, dict):
        return ["no architecture saved in it"]
    out = [
        f"{flag} {saved.get(key)} in the checkpoint, {wanted[key]} now"
        for key, flag in _ARCH_FLAGS.items()
        if key in wanted and saved.get(key) != wanted[key]
    ]
    if not out and saved != wanted:
        out = [
            f"{k} {saved.get(k)} in the checkpoint, {v} now"
            for k, v in wanted.items()
            if saved.get(k) != v
        ]
    return out


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def optimizer_state_to_params(opt: torch.optim.Optimizer) -> None:
    """Put every per-parameter state tensor of ``opt`` on its parameter's device and dtype.

    ``Optimizer.load_state_dict`` casts the state to where the parameters are *then*; moving
    the modules afterwards (``module.to(cuda)``) moves the parameters but not Adam's
    ``exp_avg``/``exp_avg_sq``, and the first step fails with a device mismatch. Adam's scalar
    ``step`` stays where torch keeps it (a float32 CPU tensor unless fused/capturable).
    """
    for param, state in opt.state.items():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor):
                state[key] = value.to(device=param.device, dtype=param.dtype)


class Trainer:
    """One training job. Build with a resolved config, then :meth:`run`."""

    def __init__(
        self,
        cfg: TrainConfig,
        resume: bool = False,
        on_step: Callable[[StepInfo], None] | None = None,
    ) -> None:
        self.cfg, self.resume, self.on_step = cfg, resume, on_step
        self.run_dir = Path(cfg.out)
        self.ckpt_dir = self.run_dir / layout.CHECKPOINTS
        want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        self.dist: DistInfo = init_distributed(want_cuda)
        self.device = pick_device(cfg.device, self.dist.local_rank)
        self.cuda = self.device.type == "cuda"
        self.amp = cfg.amp and self.cuda
        if cfg.amp and not self.cuda:
            log.warning("--amp applies to CUDA only; training in float32 on the CPU.")
        self.channels_last = self.cuda  # NHWC convs are faster on tensor cores; CPU keeps NCHW
        self._stop = StopEvent()  # set by the first Ctrl-C or SIGTERM while the loop runs
        self._last_saved_step: int | None = None  # the step checkpoints/latest holds
        self._last_batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        try:
            if not self.resume:  # resume reads the run's own folder; see _resume
                check_out_folder(self.run_dir)  # never overwrite the user's files
            elif self.run_dir.exists() and not self.run_dir.is_dir():
                raise P2PError(f"{self.run_dir}: --out exists and is not a folder.")
            self._build()
        except BaseException:
            shutdown(self.dist)  # run() shuts down otherwise; it never runs after a failed init
            raise
        # What trains: the modules themselves, or their DDP wrappers once _wrap() ran.
        self.g_train: nn.Module = self.G
        self.d_train: nn.Module = self.D

    # ---- setup -------------------------------------------------------------------------
    def _build(self) -> None:
        """Models, data, optimisers, schedules and the counters (all the training state)."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed)
        self.G = init_weights(UNetGenerator(cfg.generator_config()), generator=g)
        self.D = init_weights(PatchDiscriminator(cfg.discriminator_config()), generator=g)
        opts = DataOptions(
            cfg.image_size, cfg.load_size, cfg.direction, cfg.jitter, cfg.flip, cfg.seed
        )
        self.train_ds, self.val_ds = build_datasets(
            cfg.data, opts, cfg.synthetic_train, cfg.synthetic_val
        )
        self.steps_per_epoch = batches_per_epoch(
            len(self.train_ds), self.dist.world, cfg.batch_size
        )
        total = self.steps_per_epoch * cfg.total_epochs
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        betas = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        rule = linear_decay(cfg.epochs, cfg.epochs_decay)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, rule)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, rule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_val: float | None = None
        self.history: list[dict[str, float]] = []

    def _wrap(self) -> None:
        """Move to the device; SyncBatchNorm + DDP with several processes."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.G.to(self.device, memory_format=fmt)
        self.D.to(self.device, memory_format=fmt)
        # A resumed optimiser state was loaded beside the CPU parameters: follow them.
        optimizer_state_to_params(self.opt_g)
        optimizer_state_to_params(self.opt_d)
        if not self.dist.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        if self.cfg.norm == "batch":
            if self.cuda:
                # Batch statistics over the global batch; module keys stay BatchNorm2d's.
                nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
            elif self.dist.is_main:
                log.warning(
                    "SyncBatchNorm needs CUDA: on CPU each process normalises its own "
                    "batch (the paper's batch-1 behaviour per process)."
                )
        ids = [self.device.index] if self.cuda else None
        self.g_train = DDP(self.G, device_ids=ids)
        self.d_train = DDP(self.D, device_ids=ids)

    # ---- checkpoints ---------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_val_l1": self.best_val,
            "history": self.history,
            "seed": self.cfg.seed,
            "world_size": self.dist.world,
            "generator_config": self.cfg.generator_config().to_dict(),
            "discriminator_config": self.cfg.discriminator_config().to_dict(),
            # No RNG state: every random draw is derived from (seed, epoch, index) or
            # (seed, rank, step) (see the module docstring), so resume needs none.
        }

    def _card(self, val: tuple[float, float] | None) -> ModelCard:
        """The card saved beside the generator's weights: what export, run and eval read."""
        return ModelCard(
            generator=self.G.cfg,
            test_norm=default_test_norm(self.cfg.norm),
            direction=self.cfg.direction,
            training=TrainingInfo(
                data=self.cfg.data,
                seed=self.cfg.seed,
                step=self.step,
                epoch=self.epoch,
                val_l1=val[0] if val is not None else None,
                val_psnr=val[1] if val is not None else None,
            ),
        )

    def _save(self, name: str, val: tuple[float, float] | None, with_state: bool = True) -> None:
        if self.dist.is_main:
            save_checkpoint(
                self.ckpt_dir / name, self.G, self._card(val), self._state() if with_state else None
            )

    def _save_latest(self, val: tuple[float, float] | None = None, checked: bool = False) -> None:
        """Update checkpoints/latest with this step (weights, optimiser state, counters).

        Call on every rank: unless ``checked`` (the caller just did), the NaN/inf check of the
        weights first runs on all of them at once; only rank 0 writes.
        """
        if not checked:
            self._check_weights_finite()
        self._save(layout.LATEST, val)
        self._last_saved_step = self.step

    def _resume(self) -> int:
        latest = layout.checkpoint_dir(self.run_dir)
        if self.dist.is_main:
            recover(latest)
        barrier(self.dist)
        if not latest.is_dir():
            raise CheckpointError(f"{self.run_dir}: no checkpoints/latest to resume from.")
        state = load_state(latest)
        want_g, want_d = (
            self.cfg.generator_config().to_dict(),
            self.cfg.discriminator_config().to_dict(),
        )
        diffs = _config_diffs(state.get("generator_config"), want_g)
        diffs += [
            d for d in _config_diffs(state.get("discriminator_config"), want_d) if d not in diffs
        ]  # --norm sets both
        if diffs:
            raise CheckpointError(
                f"{latest}: the checkpoint's architecture differs from this run's options ("
                + "; ".join(diffs)
                + "); resume with the run's own values, or train into another --out."
            )
        g_state = read_weights(latest / layout.WEIGHTS_NAME)  # checked against state.pt above
        try:
            self.G.load_state_dict(g_state)
            self.D.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_g.load_state_dict(state["sched_g"])
            self.sched_d.load_state_dict(state["sched_d"])
            self.scaler.load_state_dict(state["scaler"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_in_epoch = int(state["batch_in_epoch"])
            # --lr given now wins over the saved one (e.g. to lower it after a divergence).
            rule = linear_decay(self.cfg.epochs, self.cfg.epochs_decay)
            for opt, sched in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
                sched.base_lrs = [self.cfg.lr] * len(opt.param_groups)
                for group in opt.param_groups:
                    group["initial_lr"] = self.cfg.lr
                    group["lr"] = self.cfg.lr * rule(sched.last_epoch)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{latest}: training state does not fit this run ({first_line(exc, 160)})."
            ) from None
        self.best_val = state.get("best_val_l1")
        self.history = list(state.get("history", []))
        if int(state.get("world_size", 1)) != self.dist.world and self.dist.is_main:
            log.warning(
                "resuming a %s-process run with %d processes: the data order changes.",
                state.get("world_size"),
                self.dist.world,
            )
        return self.step

    # ---- one step ----------------------------------------------------------------------
    def _last_good(self) -> str:
        """Where the last good checkpoint is, for a divergence message."""
        if self._last_saved_step is None:
            return "no checkpoint was saved yet"
        latest = layout.checkpoint_dir(self.run_dir)
        return f"the last good checkpoint is {latest} (step {self._last_saved_step})"

    def _check_weights_finite(self) -> None:
        """Before a save (on every rank at once): refuse NaN/inf generator weights.

        A finite loss with inf gradients can still leave NaN weights after the step; saving
        them would replace the last good ``latest`` with a useless one.
        """
        tensors = [*self.G.parameters(), *self.G.buffers()]
        bad = any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors)
        flag = all_reduce_mean(torch.tensor([float(bad)], device=self.device), self.dist)
        if float(flag[0]) > 0:
            raise TrainingDiverged(
                f"the generator weights became NaN/inf by step {self.step}: training stopped "
                f"and nothing was saved from the diverged state; {self._last_good()}. "
                "Lower --lr or check the data."
            )

    def _check_finite(self, values: torch.Tensor, what: str) -> torch.Tensor:
        """Mean over ranks of ``values``; stop cleanly on NaN/inf (on every rank at once)."""
        values = all_reduce_mean(values.detach().float(), self.dist)
        if not bool(torch.isfinite(values).all()):
            raise TrainingDiverged(
                f"{what} became NaN/inf at step {self.step + 1}: training stopped and nothing was "
                f"saved from the diverged state; {self._last_good()}. Lower --lr or check the data."
            )
        return values

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        real_a = batch["input"].to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        real_b = batch["target"].to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        torch.manual_seed(_step_seed(self.cfg.seed, self.dist.rank, self.step))
        mode, amp = self.cfg.gan_mode, self.amp
        with torch.autocast("cuda", enabled=amp):
            fake = self.g_train(real_a)
        # D: real pairs -> 1, generated pairs -> 0; loss halved.
        _set_requires_grad(self.D, True)
        self.opt_d.zero_grad(set_to_none=True)
        with torch.autocast("cuda", enabled=amp):
            pred_fake = self.d_train(torch.cat([real_a, fake.detach()], 1))
            pred_real = self.d_train(torch.cat([real_a, real_b], 1))
            loss_d = discriminator_loss(pred_real, pred_fake, mode)
        d_val = self._check_finite(loss_d.reshape(1), "the discriminator loss")
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)
        # G: fool the updated D (unwrapped: no gradient sync for D here) + lambda * L1.
        _set_requires_grad(self.D, False)
        self.opt_g.zero_grad(set_to_none=True)
        with torch.autocast("cuda", enabled=amp):
            pred = self.D(torch.cat([real_a, fake], 1))
            loss_g, g_gan, g_l1 = generator_losses(pred, fake, real_b, mode, self.cfg.lambda_l1)
        g_vals = self._check_finite(
            torch.stack([g_gan.detach(), g_l1.detach()]), "the generator loss"
        )
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self._last_batch = (real_a, fake, real_b)
        return {"d": float(d_val[0]), "g_gan": float(g_vals[0]), "g_l1": float(g_vals[1])}

    # ---- the run -----------------------------------------------------------------------
    def _validate(self) -> tuple[float, float] | None:
        if self.val_ds is None or not self.dist.is_main:
            return None
        return evaluate(self.G, self.val_ds, self.cfg.norm, self.device, self.cfg.max_val)

    def _write_config(self) -> None:
        from dataclasses import asdict

        write_json(self.run_dir / layout.CONFIG_JSON, asdict(self.cfg))
        write_text(self.run_dir / layout.CONFIG_TOML, config_to_toml(self.cfg))

    def _samples(self, runlog: RunLog | None) -> None:
        if runlog is None or self._last_batch is None:
            return
        a, f, b = (t.detach().float().cpu().numpy() for t in self._last_batch)
        grid = sample_grid(a, f, b)
        try:
            write_image(self.run_dir / "samples" / f"step_{self.step:07d}.png", grid)
        except DataError as exc:  # a full disk: as any other write of the run (see train())
            raise P2PError(
                f"{first_line(exc, limit=400)}; training stopped at step {self.step}; "
                f"{self._last_good()}."
            ) from None
        runlog.image("samples/input_generated_target", grid, self.step)

    def _end_of_epoch(self, runlog: RunLog | None, completed: bool) -> tuple[float, float] | None:
        """Validate, log, update latest/best/epoch_NNNN checkpoints (rank 0); all ranks wait."""
        self._check_weights_finite()
        val = self._validate()
        if self.dist.is_main:
            if val is not None and runlog is not None:
                runlog.validation(self.step, self.epoch, *val)
                self.history.append(
                    {"step": self.step, "epoch": self.epoch, "val_l1": val[0], "val_psnr": val[1]}
                )
                log.info("epoch %d step %d  val L1 %.4f  PSNR %.2f dB", self.epoch, self.step, *val)
            self._save_latest(val, checked=True)
            if val is not None and (self.best_val is None or val[0] < self.best_val):
                self.best_val = val[0]
                self._save(layout.BEST, val, with_state=False)
            finished_epoch = self.epoch if self.batch_in_epoch == 0 else None
            if (
                completed
                and finished_epoch
                and self.cfg.save_every
                and finished_epoch % self.cfg.save_every == 0
            ):
                self._save(layout.epoch_name(finished_epoch), val, with_state=False)
            if runlog is not None:
                plot_loss_curve(runlog.losses_csv, runlog.val_csv, self.run_dir / "loss_curve.png")
        barrier(self.dist)
        return val

    def run(self) -> TrainResult:
        t0 = time.perf_counter()
        try:
            if not self.resume and (
                layout.checkpoint_dir(self.run_dir).exists()
                or layout.interrupted_latest(self.run_dir).exists()
            ):
                raise P2PError(
                    f"{self.run_dir}: holds a training run already; pass --resume to "
                    "continue it or choose another --out."
                )
            resumed_from = self._resume() if self.resume else None
            if resumed_from is not None:
                self._last_saved_step = resumed_from
            self._wrap()
            runlog = None
            if self.dist.is_main:
                try:
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                    mark_run_folder(self.run_dir)  # first: the files below are now ours
                    clean_stale_temps(self.run_dir)  # temporaries of a killed earlier run
                    self._write_config()
                except OSError as exc:  # --out under a file, a read-only disk, ...
                    raise P2PError(
                        f"{self.run_dir}: run folder cannot be written ({exc.strerror or exc})."
                    ) from None
                runlog = RunLog(self.run_dir, resume_step=resumed_from)
                if resumed_from is not None:
                    log.info("resumed from step %d (epoch %d)", resumed_from, self.epoch)
            val_initial = None
            if resumed_from is None:
                v0 = self._validate()
                val_initial = v0[0] if v0 else None
                if v0 is not None:
                    log.info("untrained generator: val L1 %.4f  PSNR %.2f dB", *v0)
            with stop_on_sigint(enabled=self.dist.world == 1) as self._stop:
                self._loop(runlog)
            if runlog is not None:
                runlog.close()
            last = self.history[-1] if self.history else {}
            return TrainResult(
                self.run_dir,
                self.step,
                self.epoch,
                resumed_from,
                val_initial,
                last.get("val_l1"),
                last.get("val_psnr"),
                time.perf_counter() - t0,
                list(self.history),
            )
        except OSError as exc:  # a full disk, a folder gone read-only: one line, no traceback
            raise P2PError(
                f"{exc.filename or self.run_dir}: {exc.strerror or exc}; training stopped at "
                f"step {getattr(self, 'step', 0)}; {self._last_good()}."
            ) from None
        finally:
            shutdown(self.dist)

    def _stop_now(self) -> None:
        """After a Ctrl-C or SIGTERM: make sure ``latest`` holds this step, then raise
        KeyboardInterrupt (:class:`~p2p_deploy.errors.Terminated` after a SIGTERM)."""
        if self._last_saved_step != self.step:
            self._save_latest()
        raise self._stop.interrupt()

    def _loop(self, runlog: RunLog | None) -> int:
        cfg = self.cfg
        steps_run = 0
        if cfg.max_steps and self.step >= cfg.max_steps:
            log.info(
                "already at step %d (--max-steps %d): nothing to do.", self.step, cfg.max_steps
            )
            return 0
        while self.epoch < cfg.total_epochs:
            sampler = EpochSampler(
                len(self.train_ds),
                cfg.seed,
                self.epoch,
                self.dist.rank,
                self.dist.world,
                cfg.batch_size,
                self.batch_in_epoch,
            )
            loader = DataLoader(
                self.train_ds,
                batch_size=cfg.batch_size,
                sampler=sampler,
                num_workers=cfg.num_workers,
                pin_memory=self.cuda,
            )
            stop = False
            for batch in loader:
                losses = self._train_step(batch)
                self.step += 1
                steps_run += 1
                self.batch_in_epoch += 1
                lr = self.opt_g.param_groups[0]["lr"]
                if (
                    runlog is not None
                    and cfg.log_every
                    and (self.step % cfg.log_every == 0 or self.step == 1)
                ):
                    runlog.losses(self.step, self.epoch, losses, lr)
                    log.info(
                        "epoch %d step %d  D %.4f  G_GAN %.4f  G_L1 %.4f",
                        self.epoch,
                        self.step,
                        losses["d"],
                        losses["g_gan"],
                        losses["g_l1"],
                    )
                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self._samples(runlog)
                if self.on_step is not None and self.dist.is_main:
                    self.on_step(StepInfo(self.step, self.total_steps, self.epoch, losses))
                stop = bool(cfg.max_steps) and self.step >= cfg.max_steps
                if stop:
                    break
                if self._stop.is_set() and self.batch_in_epoch < self.steps_per_epoch:
                    self._stop_now()  # mid-epoch; at the epoch's end _end_of_epoch saves first
                if (
                    cfg.checkpoint_every
                    and self.step % cfg.checkpoint_every == 0
                    and self.batch_in_epoch < self.steps_per_epoch
                ):
                    self._save_latest()
            if self.batch_in_epoch >= self.steps_per_epoch:  # the epoch is complete
                self.epoch += 1
                self.batch_in_epoch = 0
                self.sched_g.step()
                self.sched_d.step()
                self._end_of_epoch(runlog, completed=True)
            else:
                self._end_of_epoch(runlog, completed=False)
            if stop:
                break
            if self._stop.is_set():
                self._stop_now()
        if (
            runlog is not None
            and cfg.sample_every
            and self.step % cfg.sample_every != 0
            and steps_run
        ):
            self._samples(runlog)  # always leave a final grid to look at
        return steps_run


def train(
    cfg: TrainConfig, resume: bool = False, on_step: Callable[[StepInfo], None] | None = None
) -> TrainResult:
    """Run a training job; see :class:`Trainer`. Raises P2PError subclasses for user errors.

    The run folder is held with a lock for the whole run (rank 0 takes it under torchrun): a
    second ``p2p train --out`` of the same folder refuses in one line naming this one instead
    of interleaving its files with this run's.
    """
    import contextlib
    import os

    from p2p_deploy.locking import FolderLock

    rank0 = int(os.environ.get("RANK", "0")) == 0
    with FolderLock(cfg.out, "p2p train") if rank0 else contextlib.nullcontext():
        return Trainer(cfg, resume=resume, on_step=on_step).run()
