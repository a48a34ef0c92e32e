"""report.json (schema), report.md, the PNG plots and the reports index."""

from __future__ import annotations

import json

import cv2
import jsonschema
import pytest

from p2p_deploy.bench.report import conclusions, render_markdown, write_index
from p2p_deploy.bench.schema import REPORT_SCHEMA


def test_json_matches_the_schema_and_is_strict(tiny_report):
    _report, paths = tiny_report
    text = paths["json"].read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    jsonschema.validate(data, REPORT_SCHEMA)
    assert data["schema_version"] == 1
    assert {"cpu", "gpu", "versions", "git"} <= data["environment"].keys()


def test_speedups_recomputed_from_the_json(tiny_report):
    data = json.loads(tiny_report[1]["json"].read_text())
    base = {r["batch"]: r["latency_ms"]["p50"] for r in data["results"] if r["baseline"]}
    assert sorted(base) == [1, 2]
    for r in data["results"]:
        assert r["speedup_vs_eager"] == pytest.approx(
            base[r["batch"]] / r["latency_ms"]["p50"], rel=2e-3
        )


def test_schema_rejects_a_broken_row(tiny_report):
    data = json.loads(tiny_report[1]["json"].read_text())
    del data["results"][0]["latency_ms"]["p99"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, REPORT_SCHEMA)


@pytest.mark.parametrize("name", ["latency", "throughput"])
def test_plots_are_valid_pngs(tiny_report, name):
    path = tiny_report[1][name]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 300
    assert img.std() > 5  # lines and text were drawn


def test_markdown_has_table_conclusions_and_command(tiny_report):
    report, paths = tiny_report
    md = paths["md"].read_text()
    assert md == render_markdown(report)
    table = [
        ln
        for ln in md.splitlines()
        if ln.startswith("| torch eager") or ln.startswith("| onnxruntime")
    ]
    assert len(table) == len(report["results"]) == 4
    assert "exact" in md  # eager vs itself
    assert "p2p bench --checkpoint tiny --batch 1,2" in md
    assert "![latency](latency.png)" in md
    for line in report["conclusions"]:
        assert line in md


def test_conclusions_name_the_fastest_backend_per_batch(tiny_report):
    report, _ = tiny_report
    lines = conclusions(report)
    for b in (1, 2):
        rows = [r for r in report["results"] if r["batch"] == b]
        best = min(rows, key=lambda r: r["latency_ms"]["p50"])
        assert any(
            ln.startswith(f"Batch {b}: fastest is {best['label']} {best['precision']}")
            for ln in lines
        )
    assert any("Best throughput" in ln for ln in lines)


def test_accuracy_caveat_and_unstable_rows_are_called_out(tiny_report):
    report, _ = tiny_report
    bad = json.loads(json.dumps(report))
    bad["results"][1]["max_abs_err"], bad["results"][1]["psnr_db"] = 0.3, 21.0
    bad["results"][1]["median_stable"] = False
    text = " ".join(conclusions(bad))
    assert "Accuracy caveat" in text and "PSNR 21.0 dB" in text
    assert "Unstable medians" in text


def test_index_lists_every_report(tiny_report, tmp_path):
    report, paths = tiny_report
    root = paths["json"].parent.parent
    (root / "broken-run").mkdir(exist_ok=True)
    (root / "broken-run" / "report.json").write_text("{not json")
    index = write_index(root).read_text()
    assert "[tiny-machine-2026-01-01](tiny-machine-2026-01-01/report.md)" in index
    assert "broken-run" not in index
    assert "img/s" in index
    empty = write_index(tmp_path).read_text()
    assert "no reports yet" in empty


def test_index_command(tiny_report, capsys):
    from p2p_deploy.bench.index import main as index_main

    root = tiny_report[1]["json"].parent.parent
    assert index_main([str(root)]) == 0
    assert "README.md" in capsys.readouterr().out
    assert "tiny-machine-2026-01-01" in (root / "README.md").read_text()


def test_gflops_column_shows_small_rates_not_zero(tiny_report, tiny_checkpoint):
    """Issue 11 (messages): the tiny model's torch rows showed 0 GFLOP/s (rounded away)."""
    import copy

    from p2p_deploy.bench.roofline import annotate_rows
    from p2p_deploy.models.flops import generator_flops
    from p2p_deploy.models.opening import open_model

    report = copy.deepcopy(tiny_report[0])
    gflop = generator_flops(open_model(tiny_checkpoint).card.generator) / 1e9
    annotate_rows(report["results"], gflop)
    header, *lines = [
        ln for ln in render_markdown(report).splitlines() if ln.startswith("| ") and "|--" not in ln
    ][: 1 + len(report["results"])]
    col = [c.strip() for c in header.split("|")].index("GFLOP/s")
    torch_rows = 0
    for line in lines:
        cells = [c.strip() for c in line.split("|")]
        row = next(r for r in report["results"] if f"{r['throughput_ips']:,.1f}" == cells[col - 1])
        expected = gflop * row["throughput_ips"]
        assert float(cells[col].replace(",", "")) == pytest.approx(expected, rel=0.01)
        assert float(cells[col].replace(",", "")) > 0
        torch_rows += row["backend"] == "torch"
    assert torch_rows >= 1


def test_the_io_ceiling_shows_its_median_and_spread() -> None:
    from p2p_deploy.bench.report import _e2e_section

    e2e = {
        "source": "photos", "kind": "folder", "frames": 400, "batch": 1, "workers": 2,
        "runner": "openvino int8", "fps": 45.8, "wall_s": 8.7, "bound_by": "model",
        "stage_seconds": {"decode": 0.5, "copy": 0.01, "infer": 8.0, "encode": 0.9},
        "io_ceiling": {
            "1": {"fps": 900.0, "wall_s": 0.44, "fps_runs": [910.5, 900.0, 850.0]},
            "2": {"fps": 1200.0, "wall_s": 0.33, "fps_runs": [1200.0, 1300.0, 1100.0]},
        },
    }  # fmt: skip
    text = "\n".join(_e2e_section(e2e))
    assert "900.0 fps at 1 worker (median of 3 runs: 850.0-910.5)" in text
    assert "1,200.0 fps at 2 workers (median of 3 runs: 1,100.0-1,300.0)" in text
    del e2e["io_ceiling"]["1"]["fps_runs"]  # a report of one run per count: no spread shown
    assert "900.0 fps at 1 worker," in "\n".join(_e2e_section(e2e))
