"""Is the machine quiet? Other processes' CPU use, measured around every timed row.

A latency measured while other processes compete for the cores says more about them than about
the backend: on 2 busy cores eager torch at batch 4 took 582 ms against 2.7 ms at batch 1, and
a report once concluded "454.68x" from it. So the bench measures, from the kernel's counters
(``psutil``), the CPU time the whole machine spent busy and the CPU time this process got,
both over the same wall interval:

* ``own_cores``   = this process's CPU time / wall: the cores the benchmark really got;
* ``other_cores`` = (all busy CPU time - own CPU time) / wall: the cores other processes
  took (hypervisor steal counts as taken).

A row is *disturbed* when the others took more than the cores this process left free, with a
quarter core of slack for the system's own housekeeping. Disturbed rows are marked in the
report, and no speed-up is ever stated from one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

log = logging.getLogger(__name__)

SLACK_CORES = 0.25  # kernel threads, the terminal, a logger: never zero, never contention


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), else all logical cores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return psutil.cpu_count() or 1


def _busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling (steal included: taken from us)."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _own_seconds(proc: psutil.Process) -> float:
    """CPU seconds this process (all its threads) and its finished children have used."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass(frozen=True)
class LoadSample:
    """CPU use over one wall interval.

    Attributes:
        wall_s: the interval, seconds.
        own_cores: CPU seconds this process got per wall second (cores it used).
        other_cores: CPU seconds other processes used per wall second.
        usable_cores: cores this process may run on.
        load_avg_1m: the 1-minute load average at the end (None where there is none).
    """

    wall_s: float
    own_cores: float
    other_cores: float
    usable_cores: int
    load_avg_1m: float | None

    @property
    def free_cores(self) -> float:
        """Cores this process left to the others."""
        return max(0.0, self.usable_cores - self.own_cores)

    @property
    def disturbed(self) -> bool:
        """Other processes used more than the cores left free (plus slack): they competed."""
        return self.other_cores > max(SLACK_CORES, self.free_cores - SLACK_CORES)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("wall_s", "own_cores", "other_cores", "load_avg_1m"):
            d[k] = round(d[k], 3) if d[k] is not None else None
        d["disturbed"] = self.disturbed
        return d

    def describe(self) -> str:
        """``other processes used 1.9 of 2 cores (load 3.8)``."""
        load = f", 1-min load {self.load_avg_1m:.1f}" if self.load_avg_1m is not None else ""
        return (
            f"other processes used {self.other_cores:.1f} of {self.usable_cores} cores while "
            f"the benchmark got {self.own_cores:.1f}{load}"
        )


class LoadMeter:
    """Measures :class:`LoadSample` over a ``with`` block (or from :meth:`start` to
    :meth:`stop`)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._t0 = 0.0
        self._busy0 = 0.0
        self._own0 = 0.0

    def start(self) -> LoadMeter:
        self._t0 = time.perf_counter()
        self._busy0 = _busy_seconds()
        self._own0 = _own_seconds(self._proc)
        return self

    def stop(self) -> LoadSample:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        busy = _busy_seconds() - self._busy0
        own = _own_seconds(self._proc) - self._own0
        # The kernel's counters tick at 100 Hz: a short interval can show more of our own time
        # than of the machine's; others never use less than nothing.
        other = max(0.0, busy - own)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return LoadSample(wall, own / wall, other / wall, usable_cores(), load)

    def __enter__(self) -> LoadMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.sample = self.stop()


def idle_sample(seconds: float = 1.0) -> LoadSample:
    """What other processes use while this one sleeps for ``seconds``."""
    meter = LoadMeter().start()
    time.sleep(seconds)
    return meter.stop()


def wait_for_quiet(max_wait_s: float, sample_s: float = 1.0) -> tuple[LoadSample, float]:
    """Sample the machine until it is quiet or ``max_wait_s`` passed (at least one sample).

    Returns the last sample and the seconds waited.
    """
    t0 = time.perf_counter()
    sample = idle_sample(sample_s)
    while sample.disturbed and time.perf_counter() - t0 + sample_s <= max_wait_s:
        log.info("waiting for a quiet machine: %s", sample.describe())
        sample = idle_sample(sample_s)
    return sample, time.perf_counter() - t0


def mark_disturbed(rows: list[dict[str, Any]]) -> int:
    """Set each row's ``disturbed`` from its ``load``, and withdraw every speed-up that rests on
    a disturbed timing: the row's own, or its batch's eager baseline. Returns how many rows
    were disturbed."""
    for r in rows:
        r["disturbed"] = bool((r.get("load") or {}).get("disturbed"))
    bad_base = {r["batch"] for r in rows if r.get("baseline") and r["disturbed"]}
    for r in rows:
        if r["disturbed"] or r["batch"] in bad_base:
            r["speedup_vs_eager"] = None
    return sum(r["disturbed"] for r in rows)
