#!/usr/bin/env bash
# The committed CPU report: full-size random generator, 64 synthetic 256x256 JPEGs; exports
# model.onnx, model_fp16.onnx and model_int8.onnx (calibrated on 40 other label maps), then
# eager torch vs ONNX Runtime (fp32, fp16, INT8 graph) vs OpenVINO (fp32, bf16 hint, INT8) at
# batches 1 and 4, each row against its own precision's compute floor, end to end over the
# folder. Needs the [openvino] extra. Run on a quiet machine. Extra arguments go to
# `p2p bench` (e.g. -- --threads 2). `--frame 720x1280` makes the HD report instead: an export
# for any frame size (--spatial), eager torch vs ONNX Runtime vs OpenVINO on whole 720p frames
# at their own resolution (p2p bench --size 720x1280), end to end with p2p run --resize native.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
if ! "$PY" -c "import openvino, onnxruntime" 2>/dev/null; then
    echo "error: the report needs OpenVINO and ONNX Runtime: $PY -m pip install -e '.[openvino]'" >&2
    exit 1
fi
exec "$PY" -m p2p_deploy.bench.make_cpu_report --workdir "${WORKDIR:-bench-cpu-work}" "$@"
