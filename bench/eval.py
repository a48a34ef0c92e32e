"""`p2p eval`: score a model as deployed on a data split, optionally against a baseline model.

The model (run folder, .safetensors, latest_net_G.pth, .onnx, .plan) is opened with the same
runner `p2p run` uses (:func:`p2p_deploy.runners.factory.open_runner`) and fed through its public
``infer``, so an fp16 engine or an INT8 ONNX is scored exactly as it will serve. Each pair of
the split is read with the training code's readers (:mod:`p2p_deploy.media.pairs`), its halves
resized to the model's size as validation does, the condition translated, and the output
scored against the target with :mod:`p2p_deploy.bench.metrics` (L1, PSNR, SSIM on [-1, 1]).

``resize="native"`` (``p2p eval --resize native``) scores full-resolution outputs against
full-resolution targets instead: each condition at its own size, reflect-padded to the model's
stride as ``p2p run --resize native`` pads it (tiled beyond the largest size the model takes),
the padding cropped off the output; a target of another size than its condition is resized to
the condition's. Pairs of one size share a batch.

Writes ``OUT/eval.json`` (per-image rows and means), ``OUT/eval.csv`` and ``OUT/best.png`` /
``OUT/worst.png`` (input | output | target rows for the best and worst images by L1).

As ``p2p run`` does, a pair that cannot be read, or whose output holds NaN or inf, is listed
as failed with its reason and the rest is scored (no report holds a NaN); files of a paired
split without a partner are counted and named. ``--out`` follows
the project's rule (:mod:`p2p_deploy.outputs`): a folder holding another evaluation's report,
or files ``p2p eval`` did not write, is refused before any work unless ``--overwrite``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from p2p_deploy.atomic import write_json, write_text
from p2p_deploy.bench.metrics import image_metrics, psnr_db
from p2p_deploy.errors import DataError, P2PError
from p2p_deploy.imaging import rgb8_to_tensor, tensor_to_bgr8
from p2p_deploy.media.images import write_image
from p2p_deploy.media.pairs import PairFiles, load_pair, resize_square, scan_split
from p2p_deploy.media.resize import fit_native
from p2p_deploy.models.card import DEFAULT_DIRECTION, DIRECTIONS
from p2p_deploy.models.opening import ModelFile, open_model
from p2p_deploy.outputs import (
    OutputSpec,
    check_output_folder,
    claim_output_folder,
    is_own_folder,
    is_own_json,
)
from p2p_deploy.runners.base import Runner

log = logging.getLogger(__name__)

METRICS = ("l1", "psnr_db", "ssim")
# For each metric: +1 when higher is better, -1 when lower is better.
BETTER = {"l1": -1, "psnr_db": 1, "ssim": 1}
EVAL_FORMAT = "p2p-deploy/eval"


def _is_eval_folder(folder: Path) -> bool:
    """An eval folder written before the marker: its eval.json is one of ours."""
    return is_own_json(folder / "eval.json", EVAL_FORMAT, ("model", "runner", "mean", "images"))


EVAL_OUTPUT = OutputSpec(
    command="p2p eval",
    flag="--out",
    what="evaluation report",
    marker=".p2p-eval",
    names=("eval.json", "eval.csv", "best.png", "worst.png", "outputs", "targets"),
    legacy=_is_eval_folder,
    overwrite_flag="--overwrite",
    example="eval",
)


@dataclass(frozen=True)
class EvalOptions:
    """What `p2p eval` was asked to do.

    Attributes:
        model: anything `p2p run` takes.
        data: a dataset folder holding ``split`` (aligned A|B images or A/ + B/).
        split: which split folder to score.
        out: folder for eval.json, eval.csv, best.png, worst.png.
        baseline: a second model scored on the same images, for differences.
        limit: score at most this many pairs (the first by name); None = all.
        direction: AtoB or BtoA; None = from the model's card, else BtoA.
        batch: images per runner call.
        grid: rows in best.png and worst.png.
        device: runner device (None: the runner's default).
        save_images: also write every output and target (model size, PNG; with ``native``
            full size) to ``out/outputs/`` and ``out/targets/`` (for FID with an external
            tool).
        overwrite: replace an ``out`` that holds another evaluation's report (or files
            ``p2p eval`` did not write at its names).
        resize: ``stretch`` (halves resized to the model's S x S, as validation does) or
            ``native`` (full resolution; see the module docstring).
    """

    model: Path
    data: Path
    split: str = "test"
    out: Path = Path("eval")
    baseline: Path | None = None
    limit: int | None = None
    direction: str | None = None
    batch: int = 4
    grid: int = 4
    device: str | None = None
    save_images: bool = False
    overwrite: bool = False
    resize: str = "stretch"

    def identity(self) -> dict[str, Any]:
        """What this evaluation scores (kept in the report folder's marker): another model,
        baseline, data or split in the same ``--out`` needs ``--overwrite``."""

        def where(p: Path | None) -> str | None:
            return None if p is None else str(Path(p).absolute())

        return {
            "model": where(self.model),
            "baseline": where(self.baseline),
            "data": where(self.data),
            "split": self.split,
        }


@dataclass
class ModelScores:
    """One model's per-image metrics over the split."""

    model: str
    runner: str
    image_size: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def mean(self) -> dict[str, float | None]:
        """Mean of each metric over the scored images (None when none was scored)."""
        if not self.rows:
            return dict.fromkeys(METRICS)
        return {m: float(np.mean([r[m] for r in self.rows])) for m in METRICS}


@dataclass
class EvalResult:
    """What `p2p eval` found; ``to_dict()`` is eval.json."""

    options: EvalOptions
    direction: str
    direction_source: str
    model: ModelScores
    baseline: ModelScores | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    unpaired: list[dict[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """As ``p2p run``: 0 every pair scored, 2 some failed (listed), 1 none was scored."""
        if not self.failures:
            return 0
        return 2 if self.model.rows else 1

    def _common_rows(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(model row, baseline row) of the images both models scored."""
        if self.baseline is None:
            return []
        base = {r["name"]: r for r in self.baseline.rows}
        return [(r, base[r["name"]]) for r in self.model.rows if r["name"] in base]

    def comparison(self) -> dict[str, Any] | None:
        """Mean difference (model - baseline) per metric and the largest per-image drop, over
        the images both models scored."""
        if self.baseline is None:
            return None
        common = self._common_rows()
        if not common:
            return {"difference": None, "largest_drop": None, "psnr_vs_baseline_db": None}
        m = {k: float(np.mean([rm[k] for rm, _ in common])) for k in METRICS}
        b = {k: float(np.mean([rb[k] for _, rb in common])) for k in METRICS}
        drops = {}
        for k in METRICS:
            # A drop is a change for the worse: L1 up, PSNR / SSIM down.
            per_image = [(BETTER[k] * (rb[k] - rm[k]), rm["name"]) for rm, rb in common]
            worst, name = max(per_image)
            drops[k] = {"name": name, "drop": worst}
        # Absent when the two models have different input sizes (outputs not comparable).
        agree = [r["psnr_vs_baseline_db"] for r in self.model.rows if "psnr_vs_baseline_db" in r]
        return {
            "difference": {k: m[k] - b[k] for k in METRICS},
            "largest_drop": drops,
            "psnr_vs_baseline_db": (
                {"mean": float(np.mean(agree)), "min": float(np.min(agree))} if agree else None
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.options).items()}
        d: dict[str, Any] = {
            "format": EVAL_FORMAT,
            "model": self.model.model,
            "runner": self.model.runner,
            "image_size": self.model.image_size,
            "resize": self.options.resize,  # native: scored at full resolution
            "data": str(self.options.data),
            "split": self.options.split,
            "direction": self.direction,
            "direction_source": self.direction_source,
            "count": len(self.model.rows),
            "mean": self.model.mean(),
            "images": self.model.rows,
            "failed": len(self.failures),
            "failures": self.failures,
            "unpaired": self.unpaired,
            "options": opts,
            "fid": None,  # not computed: needs Inception weights (see README, `p2p eval`)
        }
        if self.baseline is not None:
            d["baseline"] = {
                "model": self.baseline.model,
                "runner": self.baseline.runner,
                "image_size": self.baseline.image_size,
                "mean": self.baseline.mean(),
                "images": self.baseline.rows,
                **(self.comparison() or {}),
            }
        d["outputs"] = self.outputs
        return d


# --------------------------------------------------------------------------------- direction


def resolve_direction(
    opts: EvalOptions, model: ModelFile, baseline: ModelFile | None = None
) -> tuple[str, str]:
    """``(direction, where it came from)``: the flag, the model's card (a checkpoint's, or the
    one an export carries from it), the baseline's, or the default (BtoA, the facades
    convention) with a warning."""
    if opts.direction is not None:
        if opts.direction not in DIRECTIONS:
            raise P2PError(f"--direction must be AtoB or BtoA, got {opts.direction!r}.")
        return opts.direction, "--direction"
    for m in (model, baseline):
        if m is not None and m.card is not None and m.card.direction is not None:
            return m.card.direction, f"{m.path} card"
    log.warning(
        "%s records no direction; assuming %s (label -> photo on facades). Pass --direction "
        "if the model translates A -> B.",
        opts.model,
        DEFAULT_DIRECTION,
    )
    return DEFAULT_DIRECTION, "default (not recorded with the model)"


# ---------------------------------------------------------------------------------- scoring


RESIZE_CHOICES = ("stretch", "native")


def _prepared(
    pair: PairFiles, direction: str, size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(condition, target) as (3, size, size) float32 in [-1, 1]; ``size`` None: at the
    condition's own size (the target resized to it when it differs).

    Raises:
        DataError: a file of the pair cannot be read, or is not two halves.
    """
    a, b = load_pair(pair)
    src, dst = (a, b) if direction == "AtoB" else (b, a)
    if size is not None:
        return rgb8_to_tensor(resize_square(src, size)), rgb8_to_tensor(resize_square(dst, size))
    if dst.shape[:2] != src.shape[:2]:
        log.info("%s: target %s resized to its condition's %s", pair.name, dst.shape[:2],
                 src.shape[:2])  # fmt: skip
        dst = cv2.resize(dst, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_AREA)
    return rgb8_to_tensor(src), rgb8_to_tensor(dst)


def _translate(runner: Runner, conds: list[np.ndarray], native: bool) -> list[np.ndarray]:
    """The runner's outputs for ``conds`` ((3, H, W) each): one batch at the model's square;
    ``native``: each reflect-padded to the stride (``p2p run --resize native``), those of one
    padded size in one batch, the padding cropped off again."""
    if not native:
        return list(runner.infer(np.stack(conds)))
    sizes = runner.size_range
    padded, boxes = [], []
    for c in conds:
        # Padding the (3, H, W) tensor as fit_native pads a frame: its (H, W, 3) view.
        x, geo = fit_native(np.ascontiguousarray(c.transpose(1, 2, 0)), sizes.stride, sizes.min)
        padded.append(np.ascontiguousarray(x.transpose(2, 0, 1)))
        boxes.append(geo.model_box)
    outs: list[np.ndarray | None] = [None] * len(conds)
    for shape in dict.fromkeys(p.shape for p in padded):
        idx = [i for i, p in enumerate(padded) if p.shape == shape]
        ys = runner.infer(np.stack([padded[i] for i in idx]))
        for i, y in zip(idx, ys, strict=True):
            x0, y0, x1, y1 = boxes[i]
            outs[i] = np.ascontiguousarray(y[:, y0:y1, x0:x1])
    return [o for o in outs if o is not None]


@dataclass
class _Kept:
    """Rows kept for a best/worst grid: (l1, name, input, output, target), bgr8 each."""

    rows: list[tuple[float, str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def _keep(kept: _Kept, n: int, item, worst: bool) -> None:  # noqa: ANN001 - tuple above
    kept.rows.append(item)
    kept.rows.sort(key=lambda r: r[0], reverse=worst)
    del kept.rows[n:]


def output_names(pairs: list[PairFiles]) -> dict[str, str]:
    """Pair name -> the PNG name of its saved output and target (``x.png``); names whose stems
    clash (``x.png`` and ``x.jpg``) keep their extension (``x.png.png``, ``x.jpg.png``), so no
    output is written over another."""
    stems: dict[str, int] = {}
    for p in pairs:
        stems[Path(p.name).stem] = stems.get(Path(p.name).stem, 0) + 1
    return {
        p.name: (Path(p.name).stem if stems[Path(p.name).stem] == 1 else p.name) + ".png"
        for p in pairs
    }


@dataclass
class _Failures:
    """Pairs that could not be scored (``path``, ``reason``), each reported once."""

    rows: list[dict[str, str]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    on_failure: Callable[[str], None] | None = None

    def add(self, pair: PairFiles, reason: str) -> None:
        if pair.name in self.names:
            return
        self.names.add(pair.name)
        self.rows.append({"path": str(pair.paths[0]), "reason": reason})
        if self.on_failure is not None:
            self.on_failure(reason)


def score_model(
    model: ModelFile,
    pairs: list[PairFiles],
    opts: EvalOptions,
    direction: str,
    on_images: Callable[[int], None] | None = None,
    reference: dict[str, np.ndarray] | None = None,
    grids: tuple[_Kept, _Kept] | None = None,
    failures: _Failures | None = None,
) -> tuple[ModelScores, dict[str, np.ndarray]]:
    """Run ``model`` over ``pairs`` and score every output.

    ``reference`` maps names to another model's outputs ((3, S, S) float32) for the
    ``psnr_vs_baseline_db`` column (when the sizes agree). A pair that cannot be read, or
    whose output holds NaN or inf, goes to ``failures`` and the rest is scored. Returns the
    scores and this model's outputs (kept only when a later model compares against them).
    """
    from p2p_deploy.runners.factory import open_runner
    from p2p_deploy.runners.tiling import TilingRunner, tile_limit

    failures = failures if failures is not None else _Failures()
    names = output_names(pairs) if opts.save_images else {}
    outputs: dict[str, np.ndarray] = {}
    native = opts.resize == "native"
    with open_runner(model, "auto", opts.device) as opened:
        runner: Runner = opened
        if native:  # full resolution, tiled beyond the largest size the model takes
            limit = tile_limit(opened.size_range, "auto", model.path.name)
            runner = TilingRunner(opened, limit, opts.batch)
        size = runner.image_size
        scores = ModelScores(str(model.path), runner.describe(), size)
        for start in range(0, len(pairs), opts.batch):
            chunk = pairs[start : start + opts.batch]
            good: list[tuple[PairFiles, np.ndarray, np.ndarray]] = []
            for pair in chunk:
                if pair.name in failures.names:
                    continue  # already failed for the other model: scored by neither
                try:
                    good.append((pair, *_prepared(pair, direction, None if native else size)))
                except DataError as exc:
                    failures.add(pair, str(exc))
            out = _translate(runner, [c for _, c, _ in good], native) if good else []
            for (_, cond, _t), y in zip(good, out, strict=True):
                if y.shape != cond.shape:
                    raise P2PError(
                        f"{model.path}: the runner returned {y.shape} for {cond.shape}."
                    )
            for (pair, cond, target), y in zip(good, out, strict=True):
                y = np.asarray(y, dtype=np.float32)
                if not np.isfinite(y).all():  # scored, it would put a NaN into every mean
                    failures.add(
                        pair,
                        f"{pair.paths[0]}: the output of {model.path} holds NaN or inf "
                        "(broken weights, or an fp16 overflow); not scored.",
                    )
                    continue
                row: dict[str, Any] = {"name": pair.name, **image_metrics(y, target)}
                if reference is not None and pair.name in reference:
                    ref = reference[pair.name]
                    if ref.shape == y.shape:
                        row["psnr_vs_baseline_db"] = psnr_db(y, ref)
                scores.rows.append(row)
                if reference is None and opts.baseline is not None:
                    outputs[pair.name] = y
                if grids is not None:  # the model under test, not the baseline
                    src8, out8, tgt8 = tensor_to_bgr8(np.stack([cond, y, target]))
                    item = (row["l1"], pair.name, src8, out8, tgt8)
                    _keep(grids[0], opts.grid, item, worst=False)
                    _keep(grids[1], opts.grid, item, worst=True)
                    if opts.save_images:
                        write_image(opts.out / "outputs" / names[pair.name], out8)
                        write_image(opts.out / "targets" / names[pair.name], tgt8)
            if on_images:
                on_images(len(chunk))
    # A pair the baseline scored but this model failed on is compared by neither.
    scores.rows = [r for r in scores.rows if r["name"] not in failures.names]
    return scores, outputs


# ------------------------------------------------------------------------------------ output


GRID_MIN_TILE = 128  # small models' tiles are enlarged (nearest) so captions fit


def _caption(text: str, width: int) -> np.ndarray:
    strip = np.full((18, width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    cv2.putText(strip, text, (3, 13), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


GRID_NATIVE_HEIGHT = 256  # full-resolution tiles of several sizes are scaled to this height


def _native_grid(rows: list[tuple[float, str, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """:func:`grid_image` for tiles of several sizes (``--resize native``): every tile scaled
    to :data:`GRID_NATIVE_HEIGHT` rows (aspect kept), rows padded white to the widest."""
    t = GRID_NATIVE_HEIGHT
    lines = []
    for _l1, _name, *tiles in rows:
        scaled = [
            cv2.resize(x, (max(1, round(x.shape[1] * t / x.shape[0])), t),
                       interpolation=cv2.INTER_AREA if x.shape[0] > t else cv2.INTER_LINEAR)
            for x in tiles
        ]  # fmt: skip
        lines.append(np.concatenate(scaled, 1))
    width = max(x.shape[1] for x in lines)

    def pad(x: np.ndarray) -> np.ndarray:
        return np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255)

    blocks = [_caption("input | output | target", width)]
    for (l1_value, name, *_), line in zip(rows, lines, strict=True):
        blocks += [_caption(f"{name}   L1 {l1_value:.4f}", width), pad(line)]
    return np.concatenate(blocks, axis=0)


def grid_image(rows: list[tuple[float, str, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """A header, then per row a caption (file name, L1) over input | output | target.

    Each row holds three (S, S, 3) uint8 BGR tiles; tiles under 128 px are enlarged by an
    integer factor (nearest neighbour) so that the captions fit. Returns (H, 3 * T, 3) uint8
    BGR with T the tile size. Tiles of other shapes (``--resize native``): see
    :func:`_native_grid`.
    """
    if any(t.shape[:2] != (t.shape[0], t.shape[0]) or t.shape != rows[0][2].shape
           for r in rows for t in r[2:]):  # fmt: skip
        return _native_grid(rows)
    size = rows[0][2].shape[0]
    factor = max(1, -(-GRID_MIN_TILE // size))
    tile = size * factor
    blocks = [_caption("input | output | target", 3 * tile)]
    for l1_value, name, src, out, tgt in rows:
        tiles = [
            cv2.resize(t, (tile, tile), interpolation=cv2.INTER_NEAREST) if factor > 1 else t
            for t in (src, out, tgt)
        ]
        blocks += [_caption(f"{name}   L1 {l1_value:.4f}", 3 * tile), np.concatenate(tiles, 1)]
    return np.concatenate(blocks, axis=0)


def _csv(result: EvalResult) -> str:
    cols = ["name", *METRICS]
    base_rows = {}
    if result.baseline is not None:
        cols += [f"baseline_{m}" for m in METRICS] + ["psnr_vs_baseline_db"]
        base_rows = {r["name"]: r for r in result.baseline.rows}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in result.model.rows:
        line = [r["name"], *(f"{r[m]:.6f}" for m in METRICS)]
        if result.baseline is not None:
            b = base_rows.get(r["name"])
            line += [f"{b[m]:.6f}" if b else "" for m in METRICS]
            v = r.get("psnr_vs_baseline_db")
            line.append("" if v is None else f"{v:.6f}")
        w.writerow(line)
    return buf.getvalue()


def run_eval(
    opts: EvalOptions,
    on_images: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> EvalResult:
    """Score ``opts.model`` (and ``opts.baseline``) on ``opts.data / opts.split`` and write the
    report files into ``opts.out``.

    ``on_total(n)`` is called once with the number of images to score (the pairs times the
    number of models), then ``on_images(n)`` after every batch with the number just scored;
    ``on_failure(reason)`` once per pair that cannot be scored (it is listed in eval.json).

    Raises:
        P2PError / DataError: a missing split, a model that cannot load, an ``--out`` that
            may not be written (UsageError); unreadable pairs are failures, not errors.
    """
    from p2p_deploy.locking import FolderLock

    if opts.batch < 1 or opts.grid < 1 or (opts.limit is not None and opts.limit < 1):
        raise P2PError("--batch, --grid and --limit must be at least 1.")
    if opts.resize not in RESIZE_CHOICES:
        raise P2PError(f"--resize must be stretch or native, got {opts.resize!r}.")
    if not opts.data.is_dir():
        raise DataError(f"{opts.data}: no such data folder.")
    from p2p_deploy.paths import contained

    contained(opts.data, opts.split, "--split")  # a split is a folder of DATA, nothing else
    scan = scan_split(opts.data, opts.split)
    pairs = scan.pairs
    if opts.limit is not None:
        pairs = pairs[: opts.limit]
    # Before any work: the report folder may be written, and no other eval writes it now.
    check_output_folder(
        opts.out, EVAL_OUTPUT, identity=opts.identity(), overwrite=opts.overwrite
    )
    model = open_model(opts.model)  # each model is read once, here
    base = open_model(opts.baseline) if opts.baseline is not None else None
    direction, source = resolve_direction(opts, model, base)
    if on_total:
        on_total(len(pairs) * (2 if opts.baseline is not None else 1))

    with FolderLock(opts.out, "p2p eval"):
        # Checked again under the lock: another eval may have written it meanwhile.
        old = check_output_folder(
            opts.out, EVAL_OUTPUT, identity=opts.identity(), overwrite=opts.overwrite
        )
        if is_own_folder(opts.out, EVAL_OUTPUT):
            _remove_earlier(opts.out, old)  # the whole earlier set goes: reports never mix
        claim_output_folder(opts.out, EVAL_OUTPUT, opts.identity())
        grids = (_Kept(), _Kept())
        failures = _Failures(on_failure=on_failure)
        reference = None
        baseline = None
        if base is not None:
            baseline, reference = score_model(
                base, pairs, opts, direction, on_images, failures=failures
            )
        scores, _ = score_model(
            model, pairs, opts, direction, on_images, reference, grids, failures
        )
        if baseline is not None:  # drop what the model failed on from the baseline too
            baseline.rows = [r for r in baseline.rows if r["name"] not in failures.names]
        result = EvalResult(
            opts,
            direction,
            source,
            scores,
            baseline,
            failures=failures.rows,
            unpaired=[{"path": str(p), "reason": why} for p, why in scan.unpaired],
        )
        _write_report(result, grids)
    return result


def _remove_earlier(out: Path, names: list[str]) -> None:
    """Remove an earlier evaluation's files (``names`` in ``out``, already checked to be
    p2p eval's own or given up with --overwrite)."""
    import shutil

    for name in names:
        path = out / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise P2PError(
                f"{path}: cannot remove the earlier report ({exc.strerror or exc})."
            ) from None


def _write_report(result: EvalResult, grids: tuple[_Kept, _Kept]) -> None:
    opts = result.options
    out = opts.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        names: tuple[str, ...] = ("eval.json", "eval.csv")
        if grids[0].rows:
            write_image(out / "best.png", grid_image(grids[0].rows))
            write_image(out / "worst.png", grid_image(grids[1].rows))
            names += ("best.png", "worst.png")
        write_text(out / "eval.csv", _csv(result))
        if opts.save_images:
            names += ("outputs", "targets")
        result.outputs = {k: str(out / k) for k in names}
        write_json(out / "eval.json", result.to_dict())
    except OSError as exc:
        raise P2PError(f"{exc.filename or out}: cannot write ({exc.strerror or exc}).") from None
