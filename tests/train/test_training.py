"""The loop itself: run-folder contents, learning, NaN stop, checkpoint errors and recovery."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from p2p_deploy.errors import CheckpointError, P2PError
from p2p_deploy.models.opening import open_model
from p2p_deploy.models.weights import file_sha256
from p2p_deploy.train.checkpointing import load_state, recover, save_checkpoint
from p2p_deploy.train.loop import TrainingDiverged, train


@pytest.mark.slow
def test_run_folder_contents(tiny_train) -> None:
    cfg = tiny_train(epochs=1, epochs_decay=1, sample_every=3, log_every=2)
    res = train(cfg)
    run = Path(cfg.out)
    assert (res.step, res.epoch) == (8, 2)
    loaded = open_model(run)  # what export/run call
    assert loaded.card.generator == cfg.generator_config()
    card = loaded.card
    assert card.direction == "BtoA" and card.training.step == 8 and card.training.epoch == 2
    assert card.training.val_l1 == pytest.approx(res.val_l1) and card.training.val_psnr > 0
    assert card.training.data == "synthetic" and card.training.seed == cfg.seed
    for name in ("best", "epoch_0001", "epoch_0002"):
        assert (run / "checkpoints" / name / "generator.safetensors").is_file()
    assert json.loads((run / "config.json").read_text())["ngf"] == 8
    assert (run / "config.toml").is_file() and (run / "loss_curve.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 4, 6, 8]
    assert {"d", "g_gan", "g_l1", "lr"} <= set(rows[0])
    assert len(list(csv.DictReader(open(run / "val.csv")))) == 2
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000003.png",
        "step_0000006.png",
        "step_0000008.png",
    ]
    assert any((run / "tb").iterdir())
    state = load_state(run / "checkpoints" / "latest")  # weights_only=True
    assert state["step"] == 8 and state["opt_g"]["param_groups"][0]["lr"] == 0.0  # decayed to zero
    with pytest.raises(P2PError, match="pass --resume"):
        train(cfg)  # never silently overwrite a run


@pytest.mark.slow
def test_learning_brings_val_l1_down(tiny_train) -> None:
    # 32 px, ngf 8, batch 4: ~100 steps in well under 30 s on 2 cores.
    cfg = tiny_train(
        synthetic_train=400,
        synthetic_val=8,
        batch_size=4,
        max_steps=100,
        epochs=10,
        lr=1e-3,
        log_every=0,
        jitter=False,
    )
    res = train(cfg)
    assert res.step == 100
    assert res.val_l1 < 0.8 * res.val_l1_initial, (res.val_l1_initial, res.val_l1)


def test_nan_stops_and_keeps_last_good_checkpoint(tiny_train, caplog) -> None:
    cfg = tiny_train()
    train(cfg)  # 4 good steps, checkpoint at step 4
    latest = Path(cfg.out) / "checkpoints" / "latest" / "generator.safetensors"
    before = file_sha256(latest)
    # A learning rate of 1e30 really diverges: Adam moves every weight by ~1e30 in one step.
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at step 5.*last good checkpoint.*step 4"):
        train(cfg.replace(lr=1e30, epochs=3), resume=True)
    assert file_sha256(latest) == before
    assert torch.isfinite(next(iter(open_model(latest).generator().parameters()))).all()


def test_resume_errors(tiny_train, tmp_path: Path) -> None:
    cfg = tiny_train()
    with pytest.raises(CheckpointError, match="no checkpoints/latest"):
        train(cfg, resume=True)
    train(cfg)
    # Issue 11 (messages): both values are named, as the flag that sets them.
    with pytest.raises(CheckpointError, match="architecture differs") as e:
        train(cfg.replace(ngf=16, epochs=2), resume=True)
    assert f"(--ngf {cfg.ngf} in the checkpoint, 16 now); resume with" in str(e.value)
    with pytest.raises(CheckpointError, match="architecture differs") as e:
        train(cfg.replace(ngf=16, ndf=4, epochs=2), resume=True)
    assert f"--ngf {cfg.ngf} in the checkpoint, 16 now; --ndf {cfg.ndf} in the" in str(e.value)
    state = Path(cfg.out) / "checkpoints" / "latest" / "state.pt"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or unreadable training state") as e:
        train(cfg.replace(epochs=2), resume=True)
    assert "\n" not in str(e.value)
    torch.save({"format": "someone-else", "x": torch.zeros(1)}, state)
    with pytest.raises(CheckpointError, match="foreign"):
        train(cfg.replace(epochs=2), resume=True)


def test_interrupted_swap_is_recovered(tiny_train, tmp_path: Path) -> None:
    from helpers import make_tiny_generator

    from p2p_deploy.models.card import ModelCard

    ckpts = tmp_path / "ck"
    g = make_tiny_generator()
    card = ModelCard(generator=g.cfg, test_norm="stats")
    save_checkpoint(ckpts / "latest", g, card, {"step": 1})
    # A kill between the two renames: only the old folder and a half-written tmp remain.
    (ckpts / "latest").rename(ckpts / ".latest.old")
    (ckpts / ".latest.tmp").mkdir()
    (ckpts / ".latest.tmp" / "generator.safetensors").write_bytes(b"half")
    recover(ckpts / "latest")
    assert load_state(ckpts / "latest")["step"] == 1
    assert not (ckpts / ".latest.tmp").exists() and not (ckpts / ".latest.old").exists()
    save_checkpoint(ckpts / "latest", g, card, {"step": 2})
    assert load_state(ckpts / "latest")["step"] == 2
    assert [p.name for p in ckpts.iterdir()] == ["latest"]


def test_resumed_optimizer_state_follows_the_parameters(tiny_train) -> None:
    from p2p_deploy.train.loop import Trainer, optimizer_state_to_params

    cfg = tiny_train()
    train(cfg)
    # The order run() uses: state loaded beside the CPU modules, then _wrap moves them.
    trainer = Trainer(cfg.replace(epochs=2), resume=True)
    trainer._build()
    trainer._last_saved_step = None
    assert trainer._resume() == 4
    trainer._wrap()
    for opt in (trainer.opt_g, trainer.opt_d):
        assert opt.state  # Adam's moments were restored
        for param, state in opt.state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                assert state[key].device == param.device and state[key].dtype == param.dtype
    # A move after loading (to CUDA in real runs; float64 here, on the CPU) leaves Adam's
    # moments behind until optimizer_state_to_params puts them beside the parameters again.
    trainer.G.double()
    param, state = next(iter(trainer.opt_g.state.items()))
    assert state["exp_avg"].dtype == torch.float32 and param.dtype == torch.float64
    optimizer_state_to_params(trainer.opt_g)
    assert all(
        s[k].dtype == p.dtype and s[k].device == p.device
        for p, s in trainer.opt_g.state.items()
        for k in ("exp_avg", "exp_avg_sq")
    )
    assert trainer.opt_g.state[param]["step"].dtype == torch.float32  # the scalar step stays


def test_nan_weights_are_never_saved(tiny_train) -> None:
    from p2p_deploy.train.loop import Trainer

    cfg = tiny_train()
    train(cfg)  # 4 good steps, checkpoint at step 4
    latest = Path(cfg.out) / "checkpoints" / "latest" / "generator.safetensors"
    before = file_sha256(latest)

    def poison(info) -> None:  # noqa: ANN001
        # After the epoch's last step (finite losses), as inf gradients would leave them.
        if info.step == 8:
            with torch.no_grad():
                next(iter(trainer.G.parameters())).fill_(float("nan"))

    trainer = Trainer(cfg.replace(epochs=2), resume=True, on_step=poison)
    with pytest.raises(TrainingDiverged, match=r"weights became NaN/inf by step 8.*step 4"):
        trainer.run()
    assert file_sha256(latest) == before
    assert load_state(latest.parent)["step"] == 4


def test_resume_keeps_the_checkpoint_step_in_tensorboard(tiny_train) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_train()
    train(cfg)  # logs steps 1..4, checkpoint at step 4
    train(cfg.replace(epochs=2), resume=True)  # steps 5..8
    acc = EventAccumulator(str(Path(cfg.out) / "tb"))
    acc.Reload()
    # purge_step=4 used to hide step 4, which the resumed run never logs again. Sorted: the
    # reader orders event files by name, and two writers of one process in one second get
    # names that differ by a counter compared as text (".10" before ".9").
    assert sorted(e.step for e in acc.Scalars("loss/d")) == list(range(1, 9))
