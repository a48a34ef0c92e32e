"""The JSON Schema of ``report.json`` (version :data:`SCHEMA_VERSION`).

Readers check ``schema_version`` first; fields are only ever added within a version.
Conventions: times in milliseconds, memory in MB (2**20 bytes), throughput in images/second.
``psnr_db`` is null when the output is identical to the reference (infinite PSNR) or when there
is no reference; ``max_abs_err`` is null only when there is no reference. ``speedup_vs_eager``
is eager fp32 p50 / this row's p50 at the same batch from the same run, null without a baseline.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

_num = {"type": "number"}
_num_or_null = {"type": ["number", "null"]}
_latency = {
    "type": "object",
    "required": ["p50", "p90", "p99", "mean", "min", "max", "std"],
    "properties": {k: _num for k in ("p50", "p90", "p99", "mean", "min", "max", "std")},
}

ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "backend",
        "precision",
        "device",
        "batch",
        "latency_ms",
        "throughput_ips",
        "speedup_vs_eager",
        "max_abs_err",
        "psnr_db",
        "peak_host_rss_mb",
        "peak_gpu_mem_mb",
        "iterations",
        "model_ms",
        "end_to_end_ms",
    ],
    "properties": {
        "label": {"type": "string"},
        "backend": {"enum": ["torch", "onnxruntime", "openvino", "tensorrt"]},
        # bf16+fp32: OpenVINO's bf16 hint with some layers left in fp32 (runners/openvino_runner)
        "precision": {"enum": ["fp32", "fp16", "bf16", "bf16+fp32", "int8", "mixed"]},
        "device": {"type": "string"},
        "batch": {"type": "integer", "minimum": 1},
        "latency_ms": _latency,
        "throughput_ips": {"type": "number", "exclusiveMinimum": 0},
        "speedup_vs_eager": _num_or_null,
        "max_abs_err": {"type": ["number", "null"], "minimum": 0},
        "psnr_db": _num_or_null,
        "peak_host_rss_mb": _num_or_null,
        "peak_gpu_mem_mb": _num_or_null,
        "iterations": {"type": "integer", "minimum": 1},
        "model_ms": _num_or_null,
        "end_to_end_ms": _num,
        # Added within version 1 (absent from older reports):
        "stream_ips": _num_or_null,
        "device_speedup_vs_eager": _num_or_null,
        "copy_bound": {"type": ["boolean", "null"]},
        "first_call_s": _num_or_null,
        # [height, width] the row ran at (`p2p bench --size`), and its cost per frame there
        "frame": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "gflop_per_frame": _num_or_null,
    },
}

E2E_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    # Older reports: sequential "stages" (+ "pipeline"); since the worker pool: the pipeline's
    # busy seconds per stage, its bounding stage and the I/O ceiling.
    "required": ["source", "frames", "batch", "fps", "wall_s"],
    "anyOf": [{"required": ["stages"]}, {"required": ["stage_seconds", "io_ceiling"]}],
    "properties": {
        "frames": {"type": "integer", "minimum": 1},
        "fps": {"type": "number", "exclusiveMinimum": 0},
        "workers": {"type": "integer", "minimum": 1},
        "stage_seconds": {
            "type": "object",
            "properties": {k: _num for k in ("decode", "copy", "infer", "encode")},
        },
        "bound_by": {"enum": ["model", "decode", "encode", "copies", None]},
        "io_ceiling": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["fps", "wall_s"],
                "properties": {"fps_runs": {"type": "array", "items": _num}},
            },
        },
        "model_stream_ips": _num_or_null,
        "pipeline": {
            "type": ["object", "null"],
            "required": ["frames", "fps", "wall_s", "model_ms_per_frame"],
        },
        "stages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["stage", "total_s", "ms_per_frame"],
                "properties": {
                    # read/infer/write: the run pipeline's stages (older reports: five stages)
                    "stage": {
                        "enum": [
                            *("read", "infer", "write"),
                            *("decode", "preprocess", "postprocess", "encode"),
                        ]
                    },
                    "total_s": _num,
                    "ms_per_frame": _num,
                },
            },
        },
    },
}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "p2p-deploy benchmark report",
    "type": "object",
    "required": [
        "schema_version",
        "environment",
        "config",
        "command",
        "results",
        "skipped",
        "e2e",
        "conclusions",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "environment": {"type": "object", "required": ["cpu", "gpu", "versions", "git"]},
        "config": {"type": "object"},
        "command": {"type": "string"},
        "results": {"type": "array", "items": ROW_SCHEMA},
        "skipped": {"type": "array"},
        "e2e": E2E_SCHEMA,
        "conclusions": {"type": "array", "items": {"type": "string"}},
    },
}
