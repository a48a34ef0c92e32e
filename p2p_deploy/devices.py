"""The one grammar of device strings, for every command: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

Commands differ only in which forms they accept (training takes no ``cuda:N``: under torchrun
the local rank picks the GPU; runners take no ``auto``: None means the runner's default), and
all of them say so in the same sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from p2p_deploy.errors import P2PError

_GRAMMAR = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


@dataclass(frozen=True)
class Device:
    """A parsed device: ``kind`` is auto, cpu or cuda; ``index`` the N of ``cuda:N`` (None for
    a plain ``cuda``, which means the current/first GPU)."""

    kind: str
    index: int | None = None

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def cuda_index(self) -> int:
        """N of ``cuda:N``, 0 for a plain ``cuda``."""
        return self.index or 0

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(
    text: str, *, allow_auto: bool = True, allow_index: bool = True, flag: str = "--device"
) -> Device:
    """Parse ``text``; ``allow_auto`` / ``allow_index`` say whether ``auto`` and ``cuda:N``
    are accepted by the caller.

    Raises:
        P2PError: anything else, in one sentence naming the accepted forms.
    """
    m = _GRAMMAR.fullmatch(str(text))  # exact: torch.device refuses 'CPU' or ' cuda'
    kind, index = (m.group(1), m.group(2)) if m else (None, None)
    ok = (
        m is not None
        and (allow_auto or kind != "auto")
        and (index is None or (allow_index and kind == "cuda"))
    )
    if not ok:
        forms = (["auto"] if allow_auto else []) + ["cpu", "cuda"]
        if allow_index:
            forms.append("cuda:N (N = 0, 1, ...)")
        raise P2PError(f"{flag} must be {', '.join(forms[:-1])} or {forms[-1]}, got {text!r}.")
    return Device(kind, int(index) if index is not None else None)
