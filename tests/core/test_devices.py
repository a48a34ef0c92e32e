"""The one device-string grammar shared by run, bench, export and train."""

from __future__ import annotations

import pytest

from p2p_deploy.devices import Device, parse_device
from p2p_deploy.errors import P2PError


@pytest.mark.parametrize(
    ("text", "kind", "index"),
    [
        ("auto", "auto", None),
        ("cpu", "cpu", None),
        ("cuda", "cuda", None),
        ("cuda:1", "cuda", 1),
        ("cuda:0", "cuda", 0),
    ],
)
def test_good_devices_parse(text: str, kind: str, index: int | None) -> None:
    d = parse_device(text)
    assert (d.kind, d.index) == (kind, index)
    assert d.is_cuda == (kind == "cuda") and d.cuda_index == (index or 0)
    assert str(d) == text


# ids by position: an id "gpu" would be read as the gpu marker keyword and skipped here
BAD = ["gpu", "cuda:", "cuda:x", "cpu:0", "auto:1", "", "cuda:-1", "CPU", " cuda"]


@pytest.mark.parametrize("text", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_devices_are_one_sentence(text: str) -> None:
    with pytest.raises(P2PError, match=r"^--device must be auto, cpu, cuda or cuda:N .*got") as e:
        parse_device(text)
    assert "\n" not in str(e.value)


def test_callers_narrow_the_forms() -> None:
    with pytest.raises(P2PError, match=r"^--device must be cpu, cuda or cuda:N"):
        parse_device("auto", allow_auto=False)
    with pytest.raises(P2PError, match=r"^--device must be auto, cpu or cuda, got 'cuda:1'\.$"):
        parse_device("cuda:1", allow_index=False)
    assert parse_device("cuda", allow_index=False) == Device("cuda")
