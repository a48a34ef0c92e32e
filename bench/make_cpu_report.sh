#!/usr/bin/env bash
# The committed CPU report: full-size random generator, 64 synthetic 256x256 JPEGs,
# ONNX Runtime vs eager torch at batches 1 and 4, end to end over the folder.
# Run on a quiet machine. Extra arguments go to `p2p bench` (e.g. -- --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
exec "$PY" -m p2p_deploy.bench.make_cpu_report --workdir "${WORKDIR:-bench-cpu-work}" "$@"
