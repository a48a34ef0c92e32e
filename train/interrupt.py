"""Ctrl-C (or SIGTERM) during training: finish the step, save, then stop; a second one stops
at once.

SIGTERM is what ``kill``, ``docker stop``, systemd and Slurm send: it is handled exactly as
Ctrl-C (the current step is saved), and the command then exits 143 instead of 130.

A KeyboardInterrupt raised wherever the signal happens to land is not reliable: when it lands
inside a ``__del__`` or a weakref callback (torch, tensorboard and matplotlib run Python code
there) Python prints "Exception ignored" and training carries on. So the first SIGINT only sets
a flag that the loop checks between steps; the loop then saves ``checkpoints/latest`` at that
step and raises KeyboardInterrupt itself. The default handler is restored by the first signal,
so a second Ctrl-C interrupts immediately (e.g. during a long validation).

Single process only: under torchrun every rank would see the signal at a different step, and a
rank leaving a collective early would hang the others; there the default behaviour stays.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)


class StopEvent(threading.Event):
    """Set by the first SIGINT or SIGTERM; ``signum`` says which (None until then)."""

    signum: int | None = None

    def interrupt(self) -> KeyboardInterrupt:
        """The exception to stop with: :class:`~p2p_deploy.errors.Terminated` after a
        SIGTERM (exit 143), a plain KeyboardInterrupt after Ctrl-C (exit 130)."""
        from p2p_deploy.errors import Terminated

        return Terminated() if self.signum == signal.SIGTERM else KeyboardInterrupt()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    from p2p_deploy.errors import Terminated

    raise Terminated


@contextlib.contextmanager
def stop_on_sigint(enabled: bool = True) -> Iterator[StopEvent]:
    """Yield an event set by the first SIGINT or SIGTERM while the block runs (when
    ``enabled`` and this is the main thread; otherwise one that is never set). The old
    handlers are restored after."""
    stop = StopEvent()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.signum = signum
        stop.set()
        # A second signal of either kind interrupts at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_terminated)
        what = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        log.warning("%s: saving this step and stopping (Ctrl-C again to stop at once).", what)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
