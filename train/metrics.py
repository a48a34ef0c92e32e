"""Run logs on disk (rank 0 only): ``losses.csv``, ``val.csv``, TensorBoard under ``tb/``."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

from p2p_deploy.atomic import write_text

log = logging.getLogger(__name__)
LOSS_FIELDS = ("step", "epoch", "d", "g_gan", "g_l1", "lr")
VAL_FIELDS = ("step", "epoch", "val_l1", "val_psnr")


def _truncate_csv(path: Path, fields: tuple[str, ...], keep_until_step: int) -> None:
    """On resume: drop rows logged after the checkpoint's step (they will be logged again)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until_step]
    lines = [",".join(fields)] + [",".join(r[k] for k in fields) for r in rows]
    write_text(path, "\n".join(lines) + "\n")


class RunLog:
    """CSV files and a TensorBoard ``SummaryWriter`` for one run folder."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.run_dir = run_dir
        self.losses_csv = run_dir / "losses.csv"
        self.val_csv = run_dir / "val.csv"
        for path, fields in ((self.losses_csv, LOSS_FIELDS), (self.val_csv, VAL_FIELDS)):
            if resume_step is not None:
                _truncate_csv(path, fields, resume_step)
            else:
                write_text(path, ",".join(fields) + "\n")
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events with step >= it: the checkpoint's own step was logged before
        # the stop and is not logged again (the loop resumes at resume_step + 1), so keep it.
        purge = None if resume_step is None else resume_step + 1
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge)

    def _append(self, path: Path, fields: tuple[str, ...], row: dict[str, Any]) -> None:
        with open(path, "a", newline="") as f:
            # csv's default line end is CRLF; the header and _truncate_csv write LF: keep one.
            csv.writer(f, lineterminator="\n").writerow([row[k] for k in fields])

    def losses(self, step: int, epoch: int, values: dict[str, float], lr: float) -> None:
        self._append(
            self.losses_csv,
            LOSS_FIELDS,
            {
                "step": step,
                "epoch": epoch,
                "lr": f"{lr:.6g}",
                **{k: f"{v:.6f}" for k, v in values.items()},
            },
        )
        for k, v in values.items():
            self.tb.add_scalar(f"loss/{k}", v, step)
        self.tb.add_scalar("lr", lr, step)

    def validation(self, step: int, epoch: int, l1: float, psnr: float) -> None:
        self._append(
            self.val_csv,
            VAL_FIELDS,
            {"step": step, "epoch": epoch, "val_l1": f"{l1:.6f}", "val_psnr": f"{psnr:.4f}"},
        )
        self.tb.add_scalar("val/l1", l1, step)
        self.tb.add_scalar("val/psnr", psnr, step)

    def image(self, tag: str, bgr: np.ndarray, step: int) -> None:
        """(H, W, 3) uint8 BGR -> TensorBoard (RGB, HWC)."""
        self.tb.add_image(tag, bgr[..., ::-1].copy(), step, dataformats="HWC")

    def close(self) -> None:
        self.tb.flush()
        self.tb.close()
