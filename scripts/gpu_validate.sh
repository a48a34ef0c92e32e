#!/usr/bin/env bash
# GPU validation: everything only a GPU can show, in one call of at most about 7 minutes on a
# 16-core GPU box with no package registry. Run from the repository root:
#
#   bash scripts/gpu_validate.sh      # logs + report -> $OUT (default ./gpu-validate)
#
# The lent machines have PyTorch (CUDA), onnx, onnxruntime (CPU), opencv-python-headless, typer,
# rich, psutil, onnxscript, matplotlib, safetensors, pytest and pytest-xdist, but no TensorRT, no
# onnxruntime-gpu, no pycuda and no registry. Missing pure-Python packages (setuptools>=77 to
# build the project, import-linter + grimp, polygraphy, jsonschema ...) are carried as wheels in
# $WHEELS (default ./.whl, ignored by git) and installed into the machine's Python; the project
# itself is then installed from this checkout (so `p2p` and the package layout are what users
# get). A pycuda sdist in $WHEELS is built in place in the background.
#
# Order: what matters most first (the GPU paths' tests, then every figure the run/bench
# targets need, then the whole suite), so a call cut short still brings the figures back.
# Scratch goes to $WORK, not $OUT: only logs and the bench report come back; the report is also
# written to bench/reports/<gpu>-<date>/ for committing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-validate}"
WORK="${WORK:-/tmp/p2p-gpu-validate}"
WHEELS="${WHEELS:-.whl}"
PY="${PY:-python3}"
JOBS="${JOBS:-15}"
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/validate.log") 2>&1
# `python -m` and pytest would put the checkout first on sys.path, whose p2p_deploy/ lacks the
# train/export/bench subpackages that only the installed layout has.
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
# Wall seconds of one command, printed after it (for the notes).
timed() { local t0=$EPOCHREALTIME; "$@"; local rc=$?
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v rc="$rc" -v c="$*" \
        'BEGIN { printf "wall %.2f s (exit %d): %s\n", b - a, rc, c }'; }
p2p() { "$PY" -m p2p_deploy "$@"; }

step "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nproc
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"

step "carried wheels and the project"
PYCUDA_PID=""
if [ -d "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || echo "some wheels failed"
    if ls "$WHEELS"/pycuda-*.tar.gz >/dev/null 2>&1 \
        && [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda.h" ]; then
        rm -rf /tmp/pycuda-src && mkdir -p /tmp/pycuda-src
        tar xzf "$WHEELS"/pycuda-*.tar.gz -C /tmp/pycuda-src --strip-components 1
        ( cd /tmp/pycuda-src && "$PY" configure.py --cuda-root="${CUDA_HOME:-/usr/local/cuda}" \
            && "$PY" setup.py build_ext -j8 --inplace ) >"$WORK/pycuda-build.log" 2>&1 &
        PYCUDA_PID=$!
    fi
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation . || exit 1
command -v p2p || ls "$(dirname "$(command -v "$PY")")"/p2p

step "GPU paths: the gpu-marked tests (runners, frame slots, compile)"
timed "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m "gpu or trt" tests \
    2>&1 | tail -15 | tee "$OUT/tests-gpu.txt"

step "inputs: 2000 label maps (256 px JPEG), a 1500-frame 256 px video; a full-size generator"
p2p synth "$WORK/data" --train 0 --val 0 --test 0 --labels 2000 --size 256 --video 1500 \
    >/dev/null
mkdir -p "$WORK/jpg" && "$PY" - "$WORK" <<'EOF'
import sys, cv2
from pathlib import Path
w = Path(sys.argv[1])
for p in sorted((w / "data" / "labels").glob("*.png")):
    cv2.imwrite(str(w / "jpg" / (p.stem + ".jpg")), cv2.imread(str(p)))
EOF
"$PY" -c "from pathlib import Path; from p2p_deploy.bench.make_cpu_report import make_checkpoint; \
make_checkpoint(Path('$WORK/gen/generator.safetensors'))"
ls "$WORK/jpg" | wc -l

step "p2p run: 2000 JPEGs and the video, batch 16, CUDA graphs, default workers"
for src in jpg data/labels.mp4; do
    timed p2p run "$WORK/$src" --engine "$WORK/gen" --out "$WORK/out-${src//\//-}" --batch 16 \
        --cuda-graphs --no-progress --overwrite --summary-json "$WORK/run-${src//\//-}.json"
    cat "$WORK/run-${src//\//-}.json"
done
step "p2p run --compile over the video, twice (the second run reuses inductor's disk cache)"
for i in 1 2; do
    timed p2p run "$WORK/data/labels.mp4" --engine "$WORK/gen" --out "$WORK/out-compile" \
        --batch 16 --compile --cuda-graphs --no-progress --overwrite --summary-json "$WORK/run-compile$i.json"
    cat "$WORK/run-compile$i.json"
done

REPORT="bench/reports/$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 \
    | tr ' A-Z' '-a-z')-$(date -u +%Y-%m-%d)"
step "bench: torch rows (uint8 frames) at batches 1,16,64, compiled at 64 + end to end -> $REPORT"
rm -rf "$REPORT"
timed p2p bench --checkpoint "$WORK/gen" --backends torch --device cuda --batch 1,16,64 \
    --warmup 0.5 --duration 1.5 --video "$WORK/data/labels.mp4" --e2e-batch 16 --out "$REPORT"
mkdir -p "$OUT/report" && cp "$REPORT"/* "$OUT/report/" 2>/dev/null

if [ -n "$PYCUDA_PID" ]; then
    step "pycuda (built in the background): its slots and buffers"
    if wait "$PYCUDA_PID"; then
        PYTHONPATH="/tmp/pycuda-src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -q \
            -p no:cacheprovider -o addopts="" tests/runtime -k pycuda 2>&1 | tail -4 \
            | tee -a "$OUT/tests-gpu.txt"
    else
        echo "pycuda: build failed"; tail -5 "$WORK/pycuda-build.log"
    fi
fi

step "the whole suite, $JOBS workers"
timed "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -n "$JOBS" --timeout 300 -rfE tests \
    2>&1 | tail -60 | tee "$OUT/tests.txt"

step "done: commit $REPORT; the run figures are in the log"
