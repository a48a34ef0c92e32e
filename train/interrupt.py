"""Ctrl-C during training: finish the step, save, then stop; a second Ctrl-C stops at once.

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


@contextlib.contextmanager
def stop_on_sigint(enabled: bool = True) -> Iterator[threading.Event]:
    """Yield an Event set by the first SIGINT while the block runs (when ``enabled`` and this is
    the main thread; otherwise an Event that is never set). The old handler is restored after."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.warning("Ctrl-C: saving this step and stopping (Ctrl-C again to stop at once).")

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
