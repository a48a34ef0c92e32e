"""Writing a benchmark report: ``report.json``, ``report.md``, PNG plots, and the reports index.

Plots use matplotlib's object API with the Agg canvas (no display, no pyplot global state).
Every file is written atomically.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from p2p_deploy.atomic import atomic_path, write_json, write_text
from p2p_deploy.bench.options import shown_path
from p2p_deploy.bench.roofline import floor_conclusion
from p2p_deploy.bench.schema import SCHEMA_VERSION
from p2p_deploy.outputs import OutputSpec, check_output_folder, claim_output_folder, is_own_json

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
LATENCY_PNG = "latency.png"
THROUGHPUT_PNG = "throughput.png"


def _is_report_folder(folder: Path) -> bool:
    """A report folder written before the marker (the committed ones): its report.json is a
    p2p bench report."""
    return is_own_json(folder / REPORT_JSON, "", ("schema_version", "results", "environment"))


# `p2p bench --out` follows the project's rule (p2p_deploy.outputs): a folder holding files
# under these names that no p2p bench wrote is refused before any timing.
BENCH_OUTPUT = OutputSpec(
    command="p2p bench",
    flag="--out",
    what="benchmark report",
    marker=".p2p-bench",
    names=(REPORT_JSON, REPORT_MD, LATENCY_PNG, THROUGHPUT_PNG),
    legacy=_is_report_folder,
    example="bench",
)
# Below these, an accuracy line in the conclusions warns the reader.
PSNR_WARN_DB = 40.0
MAX_ERR_WARN = 0.05


def series_name(row: dict[str, Any]) -> str:
    """One line per backend configuration in tables and plots: ``onnxruntime CPU fp32``."""
    return f"{row.get('label') or row['backend']} {row['precision']}"


def build_report(
    environment: dict[str, Any],
    config: dict[str, Any],
    command: str,
    rows: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    e2e: dict[str, Any] | None,
) -> dict[str, Any]:
    """Assemble the report dict (the content of ``report.json``), conclusions included."""
    report = {
        "schema_version": SCHEMA_VERSION,
        "environment": environment,
        "config": config,
        "command": command,
        "results": rows,
        "skipped": skipped,
        "e2e": e2e,
        "conclusions": [],
    }
    report["conclusions"] = conclusions(report)
    return report


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _load_warning(report: dict[str, Any]) -> str | None:
    """The first conclusion when other processes competed for the CPU, else None."""
    rows = report["results"]
    before = report.get("config", {}).get("load_before") or {}
    bad = [r for r in rows if r.get("disturbed")]
    if not bad and not before.get("disturbed"):
        return None
    parts = []
    if before.get("disturbed"):
        parts.append(
            f"before timing, other processes used {before['other_cores']:.1f} of "
            f"{before['usable_cores']} cores"
            + (f" (1-min load {before['load_avg_1m']:.1f})" if before.get("load_avg_1m") else "")
        )
    parts.append(
        f"{len(bad)} of {len(rows)} rows were timed while other processes competed for the CPU"
        " (marked †)"
    )
    return (
        "WARNING, timed under load: " + "; ".join(parts) + ". Their latencies say more about "
        "the other processes than about the backend, so no speed-up is stated from them; re-run "
        "on a quiet machine (`--quiet-wait 120` waits for one)."
    )


def _mark(row: dict[str, Any]) -> str:
    """`` †`` after a row timed under load (see the first conclusion)."""
    return " †" if row.get("disturbed") else ""


def _rate(v: float | None) -> str:
    """A rate with three significant digits (``96``, ``1,380``, ``0.042``); never a bare 0."""
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _speed_words(r: dict[str, Any]) -> str:
    """p50, throughput and speed-ups of one row, wall and device; a row whose wall time is
    host-copy bound gets no wall speed-up (its copies, not its backend, set it)."""
    parts = [f"p50 {_fmt(r['latency_ms']['p50'])} ms", f"{_fmt(r['throughput_ips'], 1)} img/s"]
    if r.get("stream_ips") and r.get("stream_ips") != r["throughput_ips"]:
        parts.append(f"{_fmt(r['stream_ips'], 1)} img/s streamed")
    if r.get("model_ms"):
        parts.append(f"device {_fmt(r['model_ms'])} ms")
    if not r.get("baseline"):
        sp, dsp = r.get("speedup_vs_eager"), r.get("device_speedup_vs_eager")
        if r.get("copy_bound"):
            parts.append("wall time bound by host copies: no wall speed-up stated")
        elif sp is not None:
            parts.append(f"{sp:.2f}x eager fp32")
        if dsp is not None:
            parts.append(f"{dsp:.2f}x eager fp32 on the device")
    return ", ".join(parts)


def conclusions(report: dict[str, Any]) -> list[str]:
    """The sentences a user reads first: which backend at which batch, best throughput,
    accuracy and measurement caveats. Derived only from the report's own numbers."""
    rows = report["results"]
    out: list[str] = []
    if not rows:
        return ["No backend could run; see the skipped list for the reasons."]
    load_line = _load_warning(report)
    if load_line:
        out.append(load_line)
    frame_line = _frame_conclusion(report)
    if frame_line:
        out.append(frame_line)
    batches = sorted({r["batch"] for r in rows})
    for b in batches:
        at_b = [r for r in rows if r["batch"] == b]
        best = min(at_b, key=lambda r: r["latency_ms"]["p50"])
        out.append(f"Batch {b}: fastest is {series_name(best)}{_mark(best)} on "
                   f"{best['device']} ({_speed_words(best)}).")  # fmt: skip
        fastest_device = min(
            (r for r in at_b if r.get("model_ms")), key=lambda r: r["model_ms"], default=None
        )
        if fastest_device is not None and fastest_device is not best:
            out.append(
                f"Batch {b}, device time: fastest is {series_name(fastest_device)} "
                f"({_speed_words(fastest_device)})."
            )
    top = max(rows, key=lambda r: r["throughput_ips"])
    out.append(
        f"Best throughput: {_fmt(top['throughput_ips'], 1)} img/s with {series_name(top)}"
        f"{_mark(top)} on "
        f"{top['device']} at batch {top['batch']}."
    )
    # Does batching pay off? Compare each series' smallest and largest batch.
    by_series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_series[series_name(r)].append(r)
    if len(batches) > 1:
        gains = []
        for name, rs in by_series.items():
            rs = sorted(rs, key=lambda r: r["batch"])
            if len(rs) > 1 and not any(r.get("disturbed") for r in rs):  # no ratio from load
                gains.append(f"{name} {rs[-1]['throughput_ips'] / rs[0]['throughput_ips']:.2f}x")
        if gains:
            out.append(
                f"Throughput at batch {batches[-1]} vs batch {batches[0]}: {', '.join(gains)} "
                "(above 1x batching pays off; near 1x the backend is compute-bound here, "
                "use batch 1 for the lowest latency)."
            )
    for r in rows:
        if (
            r.get("backend") in ("onnxruntime", "openvino")
            and r["batch"] == batches[0]
            and r.get("speedup_vs_eager")
        ):
            out.append(
                f"{series_name(r)} vs eager torch fp32 at batch {r['batch']}: "
                f"{r['speedup_vs_eager']:.2f}x (same run, ratio of p50 latencies)."
            )
    floor = report.get("config", {}).get("compute_floor")
    if floor:
        line = floor_conclusion(rows, floor)
        if line:
            out.append(line)
    worst: list[str] = []
    for r in rows:
        err, p = r.get("max_abs_err"), r.get("psnr_db")
        if r.get("accuracy_error"):
            worst.append(f"{series_name(r)} batch {r['batch']}: {r['accuracy_error']}")
        # Reduced precisions (int8, bf16) are judged by PSNR only: their max abs error is
        # expected to exceed the fp32/fp16 bar where the PSNR shows no visible difference.
        elif err is not None and (
            (err > MAX_ERR_WARN and r.get("precision") in ("fp32", "fp16"))
            or (p is not None and p < PSNR_WARN_DB)
        ):
            worst.append(
                f"{series_name(r)} batch {r['batch']} (max abs err {err:.3g}, PSNR {_fmt(p, 1)} dB)"
            )
    if worst:
        out.append(
            "Accuracy caveat, outputs differ visibly from eager fp32: " + "; ".join(worst) + "."
        )
    elif any(r.get("max_abs_err") is not None for r in rows):
        errs = [r["max_abs_err"] for r in rows if r.get("max_abs_err") is not None]
        out.append(
            f"Accuracy: every backend stays within max abs err {max(errs):.3g} of eager fp32 "
            f"(outputs in [-1, 1]; PSNR above {PSNR_WARN_DB:.0f} dB or identical)."
        )
    else:
        out.append("Accuracy not measured: no eager fp32 baseline in this run (give --checkpoint).")
    unstable = [f"{series_name(r)} b{r['batch']}" for r in rows if r.get("median_stable") is False]
    if unstable:
        out.append(
            "Unstable medians (first and second half of the samples differ by more than 5%): "
            + ", ".join(unstable)
            + ". The machine was busy or --duration too short; re-run before trusting these rows."
        )
    e2e = report.get("e2e")
    if e2e:
        out.append(e2e_conclusion(e2e))
    return out


def _frame_conclusion(report: dict[str, Any]) -> str | None:
    """With ``p2p bench --size``: the frame size, the size it ran at, and its cost per frame."""
    cfg = report.get("config", {})
    size, frame = cfg.get("size"), cfg.get("frame")
    floor = cfg.get("compute_floor") or {}
    gflop = floor.get("gflop_per_image")
    if not size or not frame:
        return None
    run = f"{frame[0]}x{frame[1]}"
    at = f"{size}" + ("" if size == run else f", run at {run} (padded to the model's stride)")
    cost = f": {gflop:.4g} GFLOP per frame" if gflop else ""
    return (
        f"Frames of {at}{cost}; every row runs whole frames at that size, as "
        "`p2p run --resize native` does (throughput in img/s is frames per second)."
    )


def e2e_conclusion(e2e: dict[str, Any]) -> str:
    """One sentence: the run's fps, against the model alone and the I/O ceiling, and what
    bounds it."""
    if "stages" in e2e:  # a report of the earlier, sequential-stages layout
        slow = max(e2e["stages"], key=lambda s: s["total_s"])
        return (
            f"End to end ({e2e['kind']}, {e2e['frames']} frames, batch {e2e['batch']}): "
            f"{_fmt(e2e['fps'], 1)} fps; the largest stage is {slow['stage']}."
        )
    w = str(e2e["workers"])
    ceiling = (e2e.get("io_ceiling") or {}).get(w, {}).get("fps")
    model = e2e.get("model_stream_ips")
    limits = [(v, name) for v, name in ((model, "the model alone"), (ceiling, "the I/O ceiling"))
              if v]  # fmt: skip
    line = (
        f"End to end ({e2e['kind']}, {e2e['frames']} frames, batch {e2e['batch']}, "
        f"{e2e['workers']} workers): {_fmt(e2e['fps'], 1)} fps"
    )
    if limits:
        low, name = min(limits)
        line += (
            f", {100 * e2e['fps'] / low:.0f}% of {name} ({_fmt(low, 1)} fps; "
            + "; ".join(f"{n} {_fmt(v, 1)}" for v, n in limits)
            + ")"
        )
    one = (e2e.get("io_ceiling") or {}).get("1", {}).get("fps")
    if one and ceiling and w != "1":
        line += (
            f"; the I/O ceiling is {_fmt(one, 1)} fps at 1 worker, {ceiling / one:.2f}x that at {w}"
        )
    return line + f"; bounded by {e2e.get('bound_by') or 'unknown'}."


def _env_lines(env: dict[str, Any]) -> list[str]:
    cpu, gpu, v, git = env["cpu"], env.get("gpu"), env["versions"], env["git"]
    lines = [
        f"- **CPU**: {cpu['model']}, {cpu.get('usable_cores')} usable cores "
        f"({cpu.get('logical_cores')} logical), {cpu.get('memory_gb')} GB RAM, "
        f"1-min load {cpu.get('load_avg_1m')} at start; torch threads {env.get('torch_threads')}",
        "- **GPU**: "
        + (
            f"{gpu['name']} ({gpu['memory_gb']} GB, sm {gpu['compute_capability']}), driver "
            f"{gpu.get('driver')}, CUDA {gpu.get('cuda')}, cuDNN {gpu.get('cudnn')}"
            if gpu
            else "none"
        ),
        "- **Software**: "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val)
        + f"; Python {env['python']}; {env['os']}",
        f"- **Commit**: `{git.get('commit') or 'unknown'}`"
        + (" (uncommitted changes)" if git.get("dirty") else ""),
        f"- **Date**: {env['date']}",
    ]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    cfg, rows = report["config"], report["results"]
    L: list[str] = ["# p2p-deploy benchmark", ""]
    warning = _load_warning(report)
    if warning:
        L += [f"> **{warning}**", ""]
    L += ["## Conclusions", ""] + [f"- {c}" for c in report["conclusions"]] + [""]
    L += ["## Environment", ""] + _env_lines(report["environment"]) + [""]
    L += [
        "## Results",
        "",
        f"Model: {cfg.get('model_desc', '?')}. Inputs: {cfg.get('inputs_desc', '?')}. "
        f"Warm-up {cfg.get('warmup_s')} s, then timed for {cfg.get('duration_s')} s per row "
        f"(at least {cfg.get('min_iters')} iterations, extended up to 2x while the median drifts). "
        "Latency is the wall time of one `infer_frames` call on host uint8 BGR frames, what "
        "`p2p run` calls (on a GPU it includes the uint8 uploads and downloads); *device ms* is "
        "the GPU time of the same work (conversions and model) from CUDA events on the "
        "runner's stream. Throughput = batch / mean latency; *streamed* = batches submitted back "
        "to back with the runner's double buffering, as the pipeline does. Speedup = eager fp32 "
        "p50 / row p50 at the same batch in this run, *device* the same for device time; a row "
        "whose wall time is more than 1.5x its device time is host-copy bound (‡) and no wall "
        "speed-up is concluded from it. Accuracy is against eager fp32 on the same inputs "
        "(outputs in [-1, 1]; PSNR with data range 2; `exact` = identical, JSON null). "
        "Floor % = the compute floor of the row's own precision (fp32, bf16, int8: see the "
        "conclusions for how each rate was obtained) / the row's time per image.",
        "",
        "| Backend | Precision | Device | Batch | p50 ms | p90 ms | p99 ms | device ms | img/s | "
        "streamed img/s | GFLOP/s | Floor % | Speedup | Device speedup | Max abs err | PSNR dB "
        "| Host RSS MB | GPU MB | Iters |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in sorted(rows, key=lambda r: (r["batch"], r["latency_ms"]["p50"])):
        lat = r["latency_ms"]
        psnr = r.get("psnr_db")
        if r.get("max_abs_err") is None:
            acc = "–"
        else:
            acc = "exact" if psnr is None else f"{psnr:.1f}"
        sp = r.get("speedup_vs_eager")
        err = r.get("max_abs_err")
        err_s = "–" if err is None else f"{err:.2e}"
        sp_s = "–" if sp is None else f"{sp:.2f}x"
        dsp = r.get("device_speedup_vs_eager")
        dsp_s = "–" if dsp is None else f"{dsp:.2f}x"
        stable = ("" if r.get("median_stable", True) else " ⚠") + (
            " †" if r.get("disturbed") else ""
        )
        cells = [
            r.get("label") or r["backend"],
            r["precision"],
            r["device"],
            str(r["batch"]),
            _fmt(lat["p50"]) + stable + (" ‡" if r.get("copy_bound") else ""),
            _fmt(lat["p90"]),
            _fmt(lat["p99"]),
            _fmt(r.get("model_ms")),
            _fmt(r["throughput_ips"], 1),
            _fmt(r.get("stream_ips"), 1),
            _rate(r.get("achieved_gflops")),
            _fmt(r.get("floor_pct"), 0),
            sp_s,
            dsp_s,
            err_s,
            acc,
            _fmt(r.get("peak_host_rss_mb"), 0),
            _fmt(r.get("peak_gpu_mem_mb"), 0),
            str(r["iterations"]),
        ]
        L.append("| " + " | ".join(cells) + " |")
    L += ["", "⚠ = median not stable (see conclusions). ‡ = wall time host-copy bound.", ""]
    if any(r.get("disturbed") for r in rows):
        L[-1:] = [
            "† = timed while other processes used the CPU (the row's `load` in report.json): "
            "not this backend's speed, and no speed-up is given for it.",
            "",
        ]
    L += [f"![latency]({LATENCY_PNG})", "", f"![throughput]({THROUGHPUT_PNG})", ""]
    if report.get("skipped"):
        L += ["### Not measured", ""]
        for s in report["skipped"]:
            b = f" (batch {s['batch']})" if s.get("batch") else ""
            L.append(f"- {s['label']}{b}: {s['reason']}")
        L.append("")
    e2e = report.get("e2e")
    if e2e:
        L += _e2e_section(e2e)
    L += ["## Reproduce", "", "```bash", report["command"], "```", ""]
    return "\n".join(L)


def _e2e_section(e2e: dict[str, Any]) -> list[str]:
    """The end-to-end section: the run, the busy time per stage, the I/O ceiling."""
    L = [
        "## End to end",
        "",
        f"`{shown_path(e2e['source'])}` ({e2e['kind']}), {e2e['frames']} frames, "
        f"batch {e2e['batch']}, {e2e['runner']}: **{_fmt(e2e['fps'], 1)} fps** "
        f"({_fmt(e2e['wall_s'], 2)} s wall). Method: {e2e.get('method', '')}."
        + (f" {e2e['unreadable']} inputs failed (not counted)." if e2e.get("unreadable") else ""),
        "",
    ]
    if "stages" in e2e:  # the earlier layout (sequential stages)
        L += ["| Stage | Total s | ms / frame | Share |", "|---|--:|--:|--:|"]
        for s in e2e["stages"]:
            L.append(
                f"| {s['stage']} | {_fmt(s['total_s'], 3)} | {_fmt(s['ms_per_frame'])} | "
                f"{_fmt(s.get('share_pct'), 1)}% |"
            )
        return [*L, ""]
    w, n = e2e["workers"], e2e["frames"]
    L += [
        f"Busy time per stage, summed over threads ({w} worker threads sharing decode and "
        "encode, the batcher's copies, the runner):",
        "",
        "| Stage | Busy s | ms / frame | Threads | Share of wall per thread |",
        "|---|--:|--:|--:|--:|",
    ]
    for stage, secs in e2e["stage_seconds"].items():
        threads = w if stage in ("decode", "encode") else 1
        share = 100 * secs / threads / e2e["wall_s"] if e2e["wall_s"] else None
        L.append(
            f"| {stage} | {_fmt(secs, 3)} | {_fmt(1e3 * secs / n)} | {threads} | "
            f"{_fmt(share, 0)}% |"
        )
    pool = sum(e2e["stage_seconds"].get(k, 0.0) for k in ("decode", "encode"))
    if pool and e2e["wall_s"]:  # the two stages share the same threads
        L.append(
            f"| decode + encode (the pool) | {_fmt(pool, 3)} | {_fmt(1e3 * pool / n)} | {w} | "
            f"{_fmt(100 * pool / w / e2e['wall_s'], 0)}% |"
        )
    L += ["", f"Bounded by: **{e2e.get('bound_by')}**.", ""]
    ceiling = e2e.get("io_ceiling") or {}
    if ceiling:
        L += [
            "**I/O ceiling** (the same pipeline and input with an instant model: decode, fit, "
            "restore and encode alone): "
            + ", ".join(
                f"{_fmt(c['fps'], 1)} fps at {k} worker{'s' if k != '1' else ''}"
                + _spread(c.get("fps_runs"))
                for k, c in sorted(ceiling.items(), key=lambda kv: int(kv[0]))
            )
            + (
                f"; the model alone ({e2e.get('model_row')}, streamed): "
                f"{_fmt(e2e['model_stream_ips'], 1)} img/s"
                if e2e.get("model_stream_ips")
                else ""
            )
            + ".",
            "",
        ]
    return L


def _spread(runs: list[float] | None) -> str:
    """`` (median of 3 runs: 980-1,100)`` for an I/O ceiling measured more than once."""
    if not runs or len(runs) < 2:
        return ""
    return f" (median of {len(runs)} runs: {_fmt(min(runs), 1)}-{_fmt(max(runs), 1)})"


def _series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[f"{series_name(r)} ({r['device']})"].append(r)
    return {k: sorted(v, key=lambda r: r["batch"]) for k, v in out.items()}


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_latency(rows: list[dict[str, Any]], path: Path) -> None:
    """p50 latency vs batch, one line per backend/precision, p90..p99 spread as a band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for name, rs in _series(rows).items():
        b = [r["batch"] for r in rs]
        p50 = [r["latency_ms"]["p50"] for r in rs]
        (line,) = ax.plot(b, p50, marker="o", label=name)
        ax.fill_between(
            b,
            [r["latency_ms"]["p90"] for r in rs],
            [r["latency_ms"]["p99"] for r in rs],
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
        ax.errorbar(
            b,
            p50,
            yerr=[[0] * len(rs), [r["latency_ms"]["p99"] - r["latency_ms"]["p50"] for r in rs]],
            fmt="none",
            ecolor=line.get_color(),
            capsize=3,
            alpha=0.7,
        )
    _axes(ax, rows, "latency per batch (ms): p50, bar to p99, band p90..p99")
    ax.set_yscale("log")
    _save(fig, path)


def plot_throughput(rows: list[dict[str, Any]], path: Path) -> None:
    """Throughput (images/s) vs batch, one line per backend/precision."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for name, rs in _series(rows).items():
        ax.plot([r["batch"] for r in rs], [r["throughput_ips"] for r in rs], marker="o", label=name)
    _axes(ax, rows, "throughput (images/s)")
    ax.set_ylim(bottom=0)
    _save(fig, path)


def _axes(ax: Any, rows: list[dict[str, Any]], ylabel: str) -> None:
    batches = sorted({r["batch"] for r in rows})
    if len(batches) > 1 and batches[-1] / batches[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if rows:
        ax.legend(fontsize=8)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and the two plots into ``out_dir``; returns their paths.

    JSON is strict (``allow_nan=False``): a NaN or inf anywhere is a bug, not a number. The
    folder is held (:class:`~p2p_deploy.locking.FolderLock`) and checked again by the rule of
    :data:`BENCH_OUTPUT` while the files are written.
    """
    from p2p_deploy.locking import FolderLock

    out = Path(out_dir)
    json.dumps(report, allow_nan=False)  # raise before anything is written
    with FolderLock(out, "p2p bench"):
        check_output_folder(out, BENCH_OUTPUT)
        claim_output_folder(out, BENCH_OUTPUT)
        return _write_files(report, out)


def _write_files(report: dict[str, Any], out: Path) -> dict[str, Path]:
    paths = {
        "json": out / REPORT_JSON,
        "md": out / REPORT_MD,
        "latency": out / LATENCY_PNG,
        "throughput": out / THROUGHPUT_PNG,
    }
    plot_latency(report["results"], paths["latency"])
    plot_throughput(report["results"], paths["throughput"])
    write_text(paths["md"], render_markdown(report))
    write_json(paths["json"], report)
    return paths


INDEX_HEADER = """# Benchmark reports

Each folder holds one `p2p bench` run: `report.md` (read this), `report.json` (schema version 1,
see `bench/schema.py`), `latency.png`, `throughput.png`. This index is generated from the
`report.json` files by `python -m p2p_deploy.bench.index` (run from the repository's root);
do not edit it by hand. Numbers are only comparable within one report (same run, same machine
state).
"""


def _index_frame(rep: dict[str, Any]) -> str:
    """The frame size of a report's rows: ``--size`` (and the padded size it ran at), else
    the model's square read from its description (``256 px``)."""
    cfg = rep.get("config", {})
    if cfg.get("size"):
        frame = cfg.get("frame")
        run = f"{frame[0]}x{frame[1]}" if frame else cfg["size"]
        return cfg["size"] + ("" if run == cfg["size"] else f" (run at {run})")
    m = re.search(r"(\d+) px", str(cfg.get("model_desc", "")))
    return f"{m.group(1)}x{m.group(1)}" if m else "–"


def write_index(reports_dir: str | Path) -> Path:
    """Regenerate ``reports_dir/README.md`` from every ``*/report.json`` under it."""
    root = Path(reports_dir)
    entries = []
    for p in sorted(root.glob(f"*/{REPORT_JSON}")):
        try:
            rep = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: skipped in the index (%s)", p, exc)
            continue
        entries.append((p.parent.name, rep))
    lines = [
        INDEX_HEADER,
        "| Report | Date | Machine | Frame | Backends | Batches | Best throughput | Commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in entries:
        env, rows = rep.get("environment", {}), rep.get("results", [])
        gpu = env.get("gpu")
        cpu = env.get("cpu", {})
        machine = (
            gpu["name"]
            if gpu
            else f"{cpu.get('model', '?')} ({cpu.get('usable_cores', '?')} cores)"
        )
        series = sorted({series_name(r) for r in rows})
        batches = sorted({r["batch"] for r in rows})
        best = max(rows, key=lambda r: r["throughput_ips"]) if rows else None
        best_s = (
            f"{best['throughput_ips']:.1f} img/s ({series_name(best)}, b{best['batch']})"
            if best
            else "–"
        )
        commit = (env.get("git") or {}).get("commit") or ""
        frame = _index_frame(rep)
        lines.append(
            f"| [{name}]({name}/{REPORT_MD}) | {str(env.get('date', ''))[:10]} | {machine} | "
            f"{frame} | {', '.join(series)} | {', '.join(map(str, batches))} | {best_s} | "
            f"`{commit[:8]}` |"
        )
    if not entries:
        lines.append("| (no reports yet) | | | | | | | |")
    path = root / "README.md"
    write_text(path, "\n".join(lines) + "\n")
    return path
