"""The committed CPU report in one command: ``python -m p2p_deploy.bench.make_cpu_report``.

Creates (in ``--workdir``) a randomly initialised full-size generator checkpoint (ngf 64,
256 px, batch norm: the paper's 54,413,955-parameter U-Net), a folder of synthetic 256x256
JPEG label maps to run on (``train.synthetic``, plain OpenCV drawings if it is absent) and
another, of different label maps, to calibrate INT8 on; exports the generator

    p2p export W/generator.safetensors --out W/export --fp16 --int8 --calib W/calib

(model.onnx, model_fp16.onnx, model_int8.onnx: quality-gated, its PSNR in its card), then
runs

    p2p bench --checkpoint W/generator.safetensors --onnx W/export/model.onnx \
        --onnx W/export/model_fp16.onnx --onnx W/export/model_int8.onnx --folder W/images \
        --batch 1,4 --warmup 5 --duration 30 --out bench/reports/<machine>-<date>

Rows: eager torch fp32 (the baseline), ONNX Runtime on the fp32, fp16 and INT8 graphs, and,
with OpenVINO installed (``pip install "p2p-deploy[openvino]"``), OpenVINO fp32, bf16 hint
(CPUs with AVX512_BF16/AMX) and INT8; each against its own precision's compute floor.

With ``--frame 720x1280`` it makes the HD report instead
(``bench/reports/<machine>-<date>-720x1280``): 16 synthetic 720x1280 label maps to run on and
16 others to calibrate on, an export for any frame size,

    p2p export W/generator.safetensors --out W/export-720x1280 --no-engine --int8 \
        --calib W/calib-720x1280 --spatial 256:768x1280:1280x2048

(MAX: a 1080p frame, padded; parity-checked at 256x256, 768x1280 and 1280x2048; INT8
calibrated at 768x1280 and gated at all three), then

    p2p bench ... --onnx W/export-720x1280/model.onnx --onnx W/export-720x1280/model_int8.onnx \
        --folder W/images-720x1280 --size 720x1280 --batch 1 ...

over the same rows: every row runs whole 720p frames at their own resolution (768x1280 after
padding to the stride 256, 181 GFLOP per frame), and the end-to-end run is ``p2p run --resize
native`` over the 720p images.

Speed does not depend on the weights' values, so random weights measure the real model; the
accuracy columns compare backends with each other, which random weights test as well as
trained ones. Run it on a quiet machine: other processes on the cores make every number wrong.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from p2p_deploy.models.layout import WEIGHTS_NAME
from p2p_deploy.models.spatial import Size

log = logging.getLogger(__name__)


def make_checkpoint(path: Path, ngf: int = 64, image_size: int = 256, seed: int = 0) -> Path:
    """Save a randomly initialised (N(0, 0.02)) batch-norm U-Net generator at ``path``."""
    import torch

    from p2p_deploy.models import UNetGenerator, init_weights
    from p2p_deploy.models.card import ModelCard, TrainingInfo
    from p2p_deploy.models.config import GeneratorConfig
    from p2p_deploy.models.weights import save_generator

    cfg = GeneratorConfig(ngf=ngf, image_size=image_size, norm="batch")
    model = init_weights(UNetGenerator(cfg), generator=torch.Generator().manual_seed(seed))
    # Random weights for benchmarking: no training data, only the seed they were drawn with.
    card = ModelCard(generator=cfg, test_norm="stats", training=TrainingInfo(seed=seed))
    return save_generator(model, path, card)


def _label_image(index: int, size: int, seed: int) -> np.ndarray:
    """(size, size, 3) uint8 BGR: a synthetic facade label map (the facades test inputs)."""
    from p2p_deploy.train.synthetic import synthetic_pair

    _photo, label_rgb = synthetic_pair(index, seed=seed, size=size)
    return cv2.cvtColor(label_rgb, cv2.COLOR_RGB2BGR)


def make_images(
    folder: Path, count: int = 64, size: int = 256, seed: int = 0, frame: Size | None = None
) -> list[Path]:
    """Write ``count`` synthetic ``size`` x ``size`` JPEGs into ``folder`` (kept if present);
    with ``frame`` (H, W) label maps of that size (a square of the longer side, centre-cropped).
    """
    from p2p_deploy.media.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = folder / f"label_{i:03d}.jpg"
        if not p.is_file():
            if frame is None:
                write_image(p, _label_image(i, size, seed))
            else:
                h, w = frame
                side = max(h, w)
                img = _label_image(i, side, seed)
                y0, x0 = (side - h) // 2, (side - w) // 2
                write_image(p, np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w]))
        paths.append(p)
    return paths


EXPORTS = ("model.onnx", "model_fp16.onnx", "model_int8.onnx")
# The HD report (--frame): fp32 and INT8 (an fp16 ONNX gains nothing on a CPU), for any size.
SIZED_EXPORTS = ("model.onnx", "model_int8.onnx")


def sized_spatial(frame: Size, stride: int, image_size: int) -> str:
    """The HD export's ``--spatial``: MIN the generator's own square, OPT the frame padded to
    the stride, MAX a frame 1.5 times as large, padded (for 720x1280 at stride 256:
    ``256:768x1280:1280x2048``, so 1080p frames run whole too)."""
    from p2p_deploy.models.spatial import format_size, padded_size

    opt = padded_size(frame, stride)
    big = padded_size((-(-3 * frame[0] // 2), -(-3 * frame[1] // 2)), stride)
    return f"{image_size}:{format_size(opt)}:{format_size(big)}"


def sized(name: str, size: str | None) -> str:
    """``export`` -> ``export-720x1280`` with ``--frame`` (the HD report's own folders)."""
    return name if size is None else f"{name}-{size}"


def export_argv(
    workdir: Path, size: str | None = None, spatial: str | None = None
) -> list[str]:
    """The ``p2p export`` arguments that make the ONNX models the report compares (with
    ``size``: fp32 and INT8 for any frame size, ``--spatial spatial``)."""
    argv = [
        "export",
        str(workdir / WEIGHTS_NAME),
        "--out",
        str(workdir / sized("export", size)),
        *(["--fp16"] if size is None else []),
        "--no-engine",
        "--int8",
        "--calib",
        str(workdir / sized("calib", size)),
    ]
    return argv + (["--spatial", spatial] if size is not None and spatial else [])


def bench_argv(
    workdir: Path,
    batches: str,
    warmup: float,
    duration: float,
    out: Path | None,
    extra: list[str],
    size: str | None = None,
) -> list[str]:
    """The ``p2p bench`` arguments of the report run."""
    names = EXPORTS if size is None else SIZED_EXPORTS
    folder = workdir / sized("export", size)
    onnx = [a for name in names for a in ("--onnx", str(folder / name))]
    argv = [
        "bench",
        "--checkpoint",
        str(workdir / WEIGHTS_NAME),
        *onnx,
        "--folder",
        str(workdir / sized("images", size)),
        *(["--size", size] if size is not None else []),
        "--batch",
        batches,
        "--warmup",
        f"{warmup:g}",
        "--duration",
        f"{duration:g}",
        "--quiet-wait",
        "120",  # a committed report is timed on a quiet machine, or says it was not
        "--device",
        "cpu",  # a CPU report, also where a GPU is present
    ]
    if out is not None:
        argv += ["--out", str(out)]
    return argv + extra


def run_p2p(argv: list[str]) -> int:
    """Run ``p2p ARGV`` as its own process (``python -m p2p_deploy`` of this interpreter) and
    return its exit code: the report is made by the very commands a user types, and the bench
    library never imports the command line (a layer above it)."""
    log.info("running: p2p %s", " ".join(argv))
    return subprocess.run([sys.executable, "-m", "p2p_deploy", *argv], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m p2p_deploy.bench.make_cpu_report", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("bench-cpu-work"),
        help="where the checkpoint and images go (reused when present)",
    )
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--size", type=int, default=256, help="the generator's square size")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument(
        "--frame",
        default=None,
        help="the HD report: frames of HxW (e.g. 720x1280) at batch 1, `p2p bench --size` "
        "(see above)",
    )
    ap.add_argument("--batch", default=None, help="default 1,4 (with --frame: 1)")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default bench/reports/<machine>-<date>/ under the current folder (the repo root)",
    )
    ap.add_argument("extra", nargs="*", help="more p2p bench flags, after --")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ckpt = a.workdir / WEIGHTS_NAME
    if not ckpt.is_file():
        make_checkpoint(ckpt, a.ngf, a.size)
    size = None
    if a.frame is not None:
        from p2p_deploy.models.spatial import format_size, parse_size

        frame = parse_size(a.frame, "--frame")
        size = format_size(frame)
        make_images(a.workdir / sized("images", size), 16, frame=frame)
        make_images(a.workdir / sized("calib", size), 16, seed=1, frame=frame)
    else:
        make_images(a.workdir / "images", a.images, a.size)
        # INT8 calibration on other label maps than the benchmarked ones (another seed).
        make_images(a.workdir / "calib", 40, a.size, seed=1)
    exported = a.workdir / sized("export", size)
    fresh = exported.is_dir() and all(
        (exported / n).is_file() and (exported / n).stat().st_mtime >= ckpt.stat().st_mtime
        for n in (EXPORTS if size is None else SIZED_EXPORTS)
    )
    if not fresh:
        spatial = None
        if size is not None:
            from p2p_deploy.models.opening import open_model

            g = open_model(ckpt).card.generator
            spatial = sized_spatial(frame, g.stride, g.image_size)
        code = run_p2p(export_argv(a.workdir, size, spatial))
        if code:
            return code

    if a.out is None:
        from p2p_deploy.bench import environment

        out = environment.default_report_dir(environment.collect(), Path("bench") / "reports")
        a.out = out.with_name(sized(out.name, size))
    batch = a.batch or ("1" if size is not None else "1,4")
    return run_p2p(bench_argv(a.workdir, batch, a.warmup, a.duration, a.out, a.extra, size))


if __name__ == "__main__":
    sys.exit(main())
