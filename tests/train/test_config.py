"""TOML config + flag overrides, and bad options."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2p_deploy.errors import P2PError
from p2p_deploy.train.config import config_to_toml, load_toml, resolve_config


def test_toml_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("ngf = 16\nimage-size = 64\nlr = 1\n[ignored]\n")
    with pytest.raises(P2PError, match="unknown option 'ignored'"):
        resolve_config(f, {})
    f.write_text('[train]\nngf = 16\nimage-size = 64\nlr = 1\ngan_mode = "lsgan"\n')
    cfg = resolve_config(f, {"ngf": 32, "seed": None})
    assert (cfg.ngf, cfg.image_size, cfg.gan_mode, cfg.seed) == (32, 64, "lsgan", 0)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)  # TOML int accepted for a float option


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = resolve_config(None, {"ngf": 8, "image_size": 32, "direction": "AtoB", "jitter": False})
    f = tmp_path / "r.toml"
    f.write_text(config_to_toml(cfg))
    assert resolve_config(f, {}) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("ngf = 'wide'", "must be int"),
        ("image_size = 100", "not a power of two"),
        ("direction = 'up'", "--direction"),
        ("ngf = ", "not valid TOML"),
        ("jitter = 1", "must be bool"),
        # Keys beside [train] used to be dropped silently.
        ("epochs = 1\n[train]\nndf = 8", r"'epochs' outside the \[train\] table"),
        ("lambda_l1 = -1", "--lambda-l1 must be >= 0"),
        ("beta1 = 1.0", r"--beta1 must be in \[0, 1\)"),
        ("image_size = 8", "--image-size must be at least 32, got 8"),
        ("ndf = 0", "--ndf must be at least 1, got 0"),
        ("max_val = 0", "--max-val must be at least 1, got 0"),
        ("checkpoint_every = -1", "--checkpoint-every must be >= 0"),
        # inf/NaN used to pass (NaN > 0 is False but inf > 0 is True) and broke config.toml.
        ("lr = inf", "--lr must be finite, got inf"),
        ("lr = nan", "--lr must be finite, got nan"),
        ("lambda_l1 = inf", "--lambda-l1 must be finite, got inf"),
        ("beta1 = nan", "--beta1 must be finite, got nan"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text + "\n")
    with pytest.raises(P2PError, match=match) as err:
        resolve_config(f, {})
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(P2PError, match="config file not found"):
        load_toml(tmp_path / "nope.toml")


def test_saved_run_config_sits_between_defaults_and_the_file(tmp_path: Path) -> None:
    # --resume: defaults < the run's saved config < --config TOML < flags.
    saved = resolve_config(None, {"ngf": 8, "image_size": 32, "lr": 1e-3, "log_every": 3})
    f = tmp_path / "c.toml"
    f.write_text("lr = 5e-4\nlog_every = 7\n")
    cfg = resolve_config(f, {"log_every": 9}, saved.to_dict())
    assert (cfg.ngf, cfg.image_size) == (8, 32)  # from the saved run
    assert cfg.lr == 5e-4  # the file beats the saved run
    assert cfg.log_every == 9  # flags beat the file
