"""A canonical-repo ``latest_net_G.pth`` built here, exported, and checked against its own module.

``CanonicalUnetGenerator`` below re-implements the canonical PyTorch pix2pix repository's
``UnetGenerator`` / ``UnetSkipConnectionBlock`` (models/networks.py) layer for layer, so its
state_dict has the repository's exact keys (``model.model.1.model.3.model.1.weight``...). Parity
of the export against this module's own output verifies the key mapping in p2p_deploy/canonical.py.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from p2p_deploy.errors import CheckpointError
from p2p_deploy.export.command import run_export
from p2p_deploy.export.options import ExportOptions
from p2p_deploy.export.parity import check_onnx_parity
from p2p_deploy.models.card import read_export_card
from p2p_deploy.models.opening import open_model


class UnetSkipConnectionBlock(nn.Module):
    """X -> [X, up(sub(down(X)))], as in the canonical repo (structure copied exactly)."""

    def __init__(
        self,
        outer_nc,
        inner_nc,
        input_nc=None,
        submodule=None,
        outermost=False,
        innermost=False,
        norm_layer=nn.BatchNorm2d,
        use_dropout=False,
    ):
        super().__init__()
        self.outermost = outermost
        if type(norm_layer) is functools.partial:
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv] + [submodule] + [uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            model = [downrelu, downconv] + [uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            down = [downrelu, downconv, downnorm]
            up = [uprelu, upconv, upnorm]
            model = down + [submodule] + up + ([nn.Dropout(0.5)] if use_dropout else [])
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class CanonicalUnetGenerator(nn.Module):
    """The canonical repo's ``UnetGenerator``: (input_nc, output_nc, num_downs, ngf, norm_layer,
    use_dropout)."""

    def __init__(
        self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False
    ):
        super().__init__()
        block = UnetSkipConnectionBlock(
            ngf * 8, ngf * 8, submodule=None, norm_layer=norm_layer, innermost=True
        )
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(
                ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer, use_dropout=use_dropout
            )
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm_layer=norm_layer)
        self.model = UnetSkipConnectionBlock(
            output_nc,
            ngf,
            input_nc=input_nc,
            submodule=block,
            outermost=True,
            norm_layer=norm_layer,
        )

    def forward(self, x):
        return self.model(x)


NORM_LAYERS = {
    "batch": functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
}


def make_canonical(
    norm: str, num_downs: int = 6, ngf: int = 4, seed: int = 0
) -> CanonicalUnetGenerator:
    """A randomised canonical U-Net: N(0, 0.02) convs, random biases, BN affine and stats."""
    g = torch.Generator().manual_seed(seed)
    net = CanonicalUnetGenerator(3, 3, num_downs, ngf, NORM_LAYERS[norm], use_dropout=True)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, 0.02, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.05, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.1, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.num_batches_tracked.fill_(100)
    return net


class PerImageTrainMode(nn.Module):
    """The canonical module as its test.py runs it (BN with batch statistics, batch size 1),
    one image at a time; dropout off so the output is deterministic. (N, 3, S, S) -> same."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.train()
        for m in self.net.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.0  # batch statistics are used; running stats stay untouched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(x[i : i + 1]) for i in range(x.shape[0])])


def _save(net: nn.Module, folder: Path) -> Path:
    path = folder / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("norm", "test_norm"), [("batch", "stats"), ("batch", "running"), ("instance", None)]
)
def test_canonical_checkpoint_exports_with_parity(tmp_path, norm, test_norm):
    net = make_canonical(norm)
    ckpt = _save(net, tmp_path)
    loaded = open_model(ckpt)
    assert loaded.card.source == "canonical"
    g = loaded.card.generator
    assert (g.ngf, g.n_down, g.norm) == (4, 6, norm)

    result = run_export(ExportOptions(ckpt, tmp_path / "out", test_norm=test_norm, engine=False))
    onnx_path = tmp_path / "out" / "model.onnx"
    assert onnx_path in result.files
    side = read_export_card(onnx_path)
    mode = test_norm or "running"
    assert side.test_norm == mode
    # The canonical module itself, in the same mode, is the reference.
    reference = PerImageTrainMode(net) if mode == "stats" else net.eval()
    report = check_onnx_parity(onnx_path, reference)
    assert report.passed and report.max_abs_err <= 1e-4


@pytest.mark.slow
def test_canonical_dataparallel_prefix_and_run_folder(tmp_path):
    net = make_canonical("batch", seed=2)
    torch.save(
        {f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "latest_net_G.pth"
    )
    result = run_export(
        ExportOptions(tmp_path, tmp_path / "out", engine=False)
    )  # a folder holding the .pth
    assert [p.name for p in result.files if p.suffix == ".onnx"] == ["model.onnx"]
    assert check_onnx_parity(tmp_path / "out" / "model.onnx", PerImageTrainMode(net)).passed


def test_state_dict_that_fits_no_unet(tmp_path):
    state = make_canonical("batch").state_dict()
    # A second conv whose input channels do not match the first conv's output.
    key = "model.model.1.model.1.weight"
    state[key] = torch.zeros(8, 5, 4, 4)
    torch.save(state, tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match=r"latest_net_G\.pth: .*"):
        run_export(ExportOptions(tmp_path / "latest_net_G.pth", tmp_path / "out", engine=False))
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_truncated_and_foreign_checkpoints(tmp_path):
    good = _save(make_canonical("batch"), tmp_path)
    data = good.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "text.pth": b"this is a text file, not a checkpoint\n",
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
    torch.save({"epoch": 3, "lr": torch.tensor(0.1)}, tmp_path / "foreign.pth")
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "linear.pth")
    expected = {
        "truncated.pth": "truncated torch checkpoint",
        "text.pth": "not a torch checkpoint",
        "foreign.pth": "not a plain state_dict of tensors",
        "linear.pth": "not a pix2pix U-Net generator state_dict",
    }
    for name, message in expected.items():
        with pytest.raises(CheckpointError, match=message) as info:
            run_export(ExportOptions(tmp_path / name, tmp_path / "out", engine=False))
        assert name in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
