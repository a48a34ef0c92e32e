"""``BenchArgs``: everything ``p2p bench`` takes, one frozen object (torch-free module, so
``p2p bench --help`` builds its flags from these fields without importing the harness).

The same fields give the report's ``config`` section and the command line that reproduces the
run (:meth:`BenchArgs.command`): nothing is listed twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_deploy.options import command_line, device_grammar, option, validate

# Kept equal to bench.candidates.BENCH_BACKENDS (a test checks); this module stays light.
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
DAY = 86_400.0  # the longest wait or timing any option asks for, in seconds


def shown_path(path: Path | str) -> str:
    """``path`` as a report shows it: relative to the working folder when inside it, so a
    report names no folder of the machine that made it (``bench-cpu-work/generator...``)."""
    p = Path(path)
    try:
        return str(p.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


@dataclass(frozen=True)
class BenchArgs:
    """Everything ``p2p bench`` takes (the report's ``config`` section)."""

    checkpoint: Path | None = option(
        None,
        short="-c",
        help="Generator checkpoint (run folder, .safetensors, or canonical latest_net_G.pth): "
        "eager torch fp32 baseline (+ fp16 channels-last / CUDA graphs on a GPU); "
        "without --onnx it is also exported to temporary fp32 and fp16 ONNX files.",
    )
    onnx: list[Path] = option(
        factory=list, metavar="PATH", help="Exported model.onnx (repeatable)."
    )
    engine: list[Path] = option(
        factory=list, metavar="PATH", help="TensorRT model.plan (repeatable; GPU)."
    )
    backends: list[str] | None = option(
        None, comma=True, choices=BACKENDS, help="Comma list of backends to include.", shown="all"
    )
    batch: list[int] = option(
        factory=lambda: [1, 4],
        comma=True,
        min=1,
        max=4096,
        short="-b",
        help="Comma list of batch sizes, e.g. 1,4,16.",
    )
    size: str | None = option(
        None,
        help="Time frames of this size, HxW or S (e.g. 720x1280 for the HD path): each row"
        " runs them at their own resolution, padded to the next multiples of the stride"
        " 2^downsamplings as `p2p run --resize native` does (720x1280 -> 768x1280 for the"
        " full-size generator); GFLOP per frame and the compute floor are scaled to it."
        " Exported models must take that size (`p2p export --spatial`); the end-to-end run uses"
        " --resize native.",
        shown="the model's own square",
    )
    warmup: float = option(2.0, min=0, max=DAY, help="Seconds of untimed warm-up per row.")
    duration: float = option(
        10.0,
        above=0,
        max=DAY,
        help="Seconds of timing per row (extended up to 2x while the median drifts).",
    )
    min_iters: int = option(10, min=1, help="Fewest timed iterations per row.")
    device: str = option("auto", check=device_grammar(), help="auto, cpu, cuda or cuda:N.")
    compile: bool = option(
        True,
        help="On CUDA, also time torch.compile rows (with and without CUDA graphs; each "
        "compiles for tens of seconds on its first call, which is not timed).",
    )
    test_norm: str | None = option(
        None,
        choices=("stats", "running"),
        help="stats or running.",
        shown="the checkpoint's; see `p2p export`",
    )
    folder: Path | None = option(
        None, help="Images: real inputs for accuracy, and the end-to-end run over them."
    )
    video: Path | None = option(None, help="A video for the end-to-end run.")
    e2e_batch: int | None = option(
        None, min=1, max=4096, help="Batch of the end-to-end run.", shown="the smallest --batch"
    )
    max_frames: int | None = option(None, min=1, help="Cap the end-to-end frames.")
    workers: int | None = option(
        None,
        min=1,
        help="Threads that decode and encode in the end-to-end run, as `p2p run --workers`.",
        shown="the usable CPU cores",
    )
    seed: int = option(0, min=0, help="Seed of the synthetic inputs.")
    threads: int | None = option(
        None,
        min=1,
        help="CPU threads of every backend (torch, ONNX Runtime, ...).",
        shown="their own",
    )
    quiet_wait: float = option(
        0.0,
        min=0,
        max=DAY,
        help="Wait up to this many seconds for a quiet machine (no other process using the "
        "CPU) before timing. Rows timed under load are marked and give no speed-up either way.",
    )
    out: Path | None = option(
        None, short="-o", help="Report folder.", shown="./p2p-bench/<machine>-<date>/"
    )

    def __post_init__(self) -> None:
        validate(self)  # every value checked where it is parsed: one line, exit 64

    def command(self) -> str:
        """The ``p2p bench`` command line that reproduces this run (from the fields above),
        paths relative to the working folder where they lie inside it."""
        shown = {
            f.name: shown_path(v) if isinstance(v, Path) else [shown_path(x) for x in v]
            for f in dataclasses.fields(self)
            if isinstance(v := getattr(self, f.name), Path)
            or (isinstance(v, list) and v and isinstance(v[0], Path))
        }
        return command_line(["p2p", "bench"], dataclasses.replace(self, **shown))

    def to_config(self) -> dict[str, Any]:
        """The fields as JSON values (paths as strings)."""

        def plain(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        return {k: plain(v) for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> BenchArgs:
        return dataclasses.replace(self, **changes)
