#!/usr/bin/env bash
# GPU validation: everything only a GPU can show, in one call on a lent GPU machine (about
# 5 minutes on an H200 with 16 cores). Run from the repository root:
#
#   bash scripts/gpu_validate.sh      # logs + report -> $OUT (default ./gpu-validate)
#
# The lent machines have PyTorch (CUDA), onnx, onnxruntime (CPU), opencv-python-headless, typer,
# rich, psutil, onnxscript, matplotlib, safetensors, pytest and pytest-xdist, but no TensorRT, no
# onnxruntime-gpu, no pycuda and no package registry: the project runs from the carried tree
# with PYTHONPATH, and missing pure-Python packages (polygraphy, jsonschema ...) are carried as
# wheels in $WHEELS (default ./.whl, ignored by git). A pycuda sdist there is built in place, in
# the background while the tests run, if the CUDA headers are there.
#
# Scratch (checkpoints, data, outputs) goes to $WORK, not $OUT: only logs and the bench report
# come back. The report is also written to bench/reports/<gpu>-<date>/ for committing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-validate}"
WORK="${WORK:-/tmp/p2p-gpu-validate}"
WHEELS="${WHEELS:-.whl}"
PY="${PY:-python3}"
STEPS="${STEPS:-200}"
JOBS="${JOBS:-12}"
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/validate.log") 2>&1

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
# Wall seconds of one command, printed after it (for the notes).
timed() { local t0=$EPOCHREALTIME; "$@"; local rc=$?
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v rc="$rc" -v c="$*" \
        'BEGIN { printf "wall %.2f s (exit %d): %s\n", b - a, rc, c }'; }

step "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nproc
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"

PYCUDA_PID=""
if [ -d "$WHEELS" ]; then
    step "carried wheels"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
        "$WHEELS"/*.whl || echo "some wheels failed"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    if ls "$WHEELS"/pycuda-*.tar.gz >/dev/null 2>&1; then
        if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda.h" ]; then
            # In place, in the background: the tests and training go on meanwhile.
            rm -rf /tmp/pycuda-src && mkdir -p /tmp/pycuda-src
            tar xzf "$WHEELS"/pycuda-*.tar.gz -C /tmp/pycuda-src --strip-components 1
            ( cd /tmp/pycuda-src && "$PY" configure.py --cuda-root="${CUDA_HOME:-/usr/local/cuda}" \
                && "$PY" setup.py build_ext -j8 --inplace ) >"$WORK/pycuda-build.log" 2>&1 &
            PYCUDA_PID=$!
        else
            echo "pycuda: no CUDA headers (cuda.h) under ${CUDA_HOME:-/usr/local/cuda}: not built"
        fi
    fi
fi
# train/, export/, bench/ install as p2p_deploy.train/.export/.bench: mirror that layout.
rm -rf .gpu-pkg && mkdir -p .gpu-pkg && cp -r p2p_deploy .gpu-pkg/
for sub in train export bench; do cp -r "$sub" ".gpu-pkg/p2p_deploy/$sub"; done
export PYTHONPATH="$PWD/.gpu-pkg:$PYTHONPATH"
# `python -m` puts the working folder first on sys.path, where p2p_deploy/ lacks train/ etc.
export PYTHONSAFEPATH=1
p2p() { "$PY" -m p2p_deploy "$@"; }

step "tests (gpu-marked included), $JOBS workers"
timed "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -n "$JOBS" tests 2>&1 \
    | tail -40 | tee "$OUT/tests.txt"

for mode in fp32 amp; do
    step "training at full size on CUDA, $mode, $STEPS steps"
    flag=""; [ "$mode" = amp ] && flag="--amp"
    timed p2p train --out "$WORK/train-$mode" --device cuda $flag --max-steps "$STEPS" \
        --synthetic-train 400 --no-progress --log-every 50
done

if [ -n "$PYCUDA_PID" ]; then
    step "pycuda (built in the background)"
    if wait "$PYCUDA_PID"; then
        export PYTHONPATH="/tmp/pycuda-src:$PYTHONPATH"
        "$PY" -c "import pycuda; print('pycuda', pycuda.VERSION_TEXT)"
        "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/runtime/test_runners.py \
            -k "pycuda or tensorrt_memory" 2>&1 | tail -5 | tee -a "$OUT/tests.txt"
    else
        echo "pycuda: build failed"; tail -20 "$WORK/pycuda-build.log"
    fi
fi

step "inputs for the end-to-end runs: 400 label maps, a 1500-frame video (256 px)"
p2p synth "$WORK/data" --train 0 --val 0 --test 0 --labels 400 --size 256 --video 1500

step "p2p run: 400 PNGs and the video, batch 16, CUDA graphs"
timed p2p run "$WORK/data/labels" --engine "$WORK/train-amp" --out "$WORK/out-images" \
    --batch 16 --cuda-graphs --no-progress --summary-json "$WORK/run-images.json"
timed p2p run "$WORK/data/labels.mp4" --engine "$WORK/train-amp" --out "$WORK/out-video" \
    --batch 16 --cuda-graphs --no-progress --summary-json "$WORK/run-video.json"
cat "$WORK"/run-*.json

REPORT="bench/reports/$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 \
    | tr ' A-Z' '-a-z')-$(date -u +%Y-%m-%d)"
step "bench: torch rows at batches 1,4,16,64 + end-to-end over the video -> $REPORT"
rm -rf "$REPORT"
timed p2p bench --checkpoint "$WORK/train-amp" --backends torch --device cuda \
    --batch 1,4,16,64 --warmup 1 --duration 3 --video "$WORK/data/labels.mp4" \
    --e2e-batch 16 --max-frames 1500 --out "$REPORT"
mkdir -p "$OUT/report" && cp "$REPORT"/* "$OUT/report/" 2>/dev/null

step "done: commit $REPORT and put $OUT/*.txt figures in the notes"
