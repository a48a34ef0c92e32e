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
# get). A pycuda sdist in $WHEELS is built in place in the background while nothing is timed:
# it is paused (SIGSTOP) during the timed runs, so that its compilers take no core from them.
#
# Order: what matters most first (the GPU paths' tests, then every figure the run/bench
# targets need, then the rest of the suite), and every step is capped at its own maximum and
# at what is left of $BUDGET seconds once the later figure steps' share is kept (SIGINT:
# pytest still prints its summary, `p2p run` cleans up), so the call ends in time with every
# figure it got. The suite gets what is left: at BUDGET=420 expect it cut short (its summary
# says how far it got); BUDGET=560 in a 600 s call leaves it about three minutes more.
# Scratch goes to $WORK, not $OUT: only logs and the bench report come back (7 files); the
# report is also written to bench/reports/<gpu>-<date>/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-validate}"
WORK="${WORK:-/tmp/p2p-gpu-validate}"
WHEELS="${WHEELS:-.whl}"
PY="${PY:-python3}"
JOBS="${JOBS:-15}"
BUDGET="${BUDGET:-420}"
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/validate.log") 2>&1
# `python -m` and pytest would put the checkout first on sys.path, whose p2p_deploy/ lacks the
# train/export/bench subpackages that only the installed layout has.
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1

step() { printf '\n== %s (%s, %d s of %d used)\n' "$*" "$(date -u +%H:%M:%S)" "$SECONDS" "$BUDGET"; }
# Wall seconds of one command, printed after it (for the notes).
timed() { local t0=$EPOCHREALTIME; "$@"; local rc=$?
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v rc="$rc" -v c="$*" \
        'BEGIN { printf "wall %.2f s (exit %d): %s\n", b - a, rc, c }'; return $rc; }
# Seconds a step may take: at most $1, and what the budget leaves after $2 s kept for later.
cap() { local left=$((BUDGET - SECONDS - ${2:-0})); [ "$left" -lt "$1" ] && echo $((left > 10 ? left : 10)) || echo "$1"; }
capped() { local s=$1; shift; timeout -s INT -k 15 "$s" "$@"; }
P2P=("$PY" -m p2p_deploy)  # an array, not a function: `timeout` runs programs only

step "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nproc
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"

step "carried wheels and the project"
PYCUDA_PID=""
if [ -d "$WHEELS" ]; then
    if ls "$WHEELS"/*.whl >/dev/null 2>&1 \
        && ! "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl; then
        # pip installs all or nothing: one bad wheel must not cost the others (setuptools>=77
        # is what builds the project below).
        for w in "$WHEELS"/*.whl; do
            "$PY" -m pip install -q --no-index --no-deps "$w" || echo "wheel failed: $w"
        done
    fi
    if ls "$WHEELS"/pycuda-*.tar.gz >/dev/null 2>&1 \
        && [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda.h" ]; then
        rm -rf /tmp/pycuda-src && mkdir -p /tmp/pycuda-src
        tar xzf "$WHEELS"/pycuda-*.tar.gz -C /tmp/pycuda-src --strip-components 1
        # Its own process group (setsid), so that SIGSTOP/SIGCONT reach the compilers too.
        setsid bash -c 'cd /tmp/pycuda-src && "$0" configure.py --cuda-root="$1" \
            && "$0" setup.py build_ext -j12 --inplace' "$PY" "${CUDA_HOME:-/usr/local/cuda}" \
            >"$WORK/pycuda-build.log" 2>&1 &
        PYCUDA_PID=$!
    fi
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation . || exit 1
command -v p2p || ls "$(dirname "$(command -v "$PY")")"/p2p

step "GPU paths: the gpu-marked tests (runners, frame slots, compile)"
timed capped "$(cap 120 250)" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
    --timeout 120 -m "gpu or trt" -rfE tests 2>&1 | tail -25 | tee "$OUT/tests-gpu.txt"

step "inputs: 2000 label maps (256 px JPEG), a 1500-frame 256 px video; a full-size generator"
"${P2P[@]}" synth "$WORK/data" --train 0 --val 0 --test 0 --labels 2000 --size 256 --video 1500 \
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

if [ -n "$PYCUDA_PID" ] && kill -0 "$PYCUDA_PID" 2>/dev/null; then
    echo "pycuda still building: paused while the runs and the bench are timed"
    kill -STOP -- "-$PYCUDA_PID" 2>/dev/null || true
fi

step "I/O ceiling: the pipeline with an instant model over both inputs, 1 and all workers"
capped "$(cap 45 220)" "$PY" - "$WORK" <<'EOF'
import json, sys, tempfile
from pathlib import Path
from p2p_deploy.bench.e2e import InstantRunner
from p2p_deploy.pipeline.options import RunOptions, usable_cores
from p2p_deploy.pipeline.run import prepare, run_pipeline
w = Path(sys.argv[1])
for src in ("jpg", "data/labels.mp4"):
    for workers in sorted({1, usable_cores()}):
        opts = RunOptions(batch=16, workers=workers)
        with tempfile.TemporaryDirectory(dir=w) as t:
            s = run_pipeline(prepare(w / src, Path(t) / "out", opts), InstantRunner(256), opts)
        print(json.dumps({"io_ceiling": src, "workers": workers, "frames": s.frames,
                          "fps": round(s.fps, 1), "bound_by": s.bound_by(),
                          "stage_seconds": s.stage_seconds}))
EOF

step "p2p run: 2000 JPEGs and the video, batch 16, CUDA graphs, default workers"
for src in jpg data/labels.mp4; do
    rm -f "$WORK/run-${src//\//-}.json"  # a run cut short leaves none: never show an old one
    timed capped "$(cap 60 200)" "${P2P[@]}" run "$WORK/$src" --engine "$WORK/gen" \
        --out "$WORK/out-${src//\//-}" --batch 16 --cuda-graphs --no-progress --overwrite \
        --summary-json "$WORK/run-${src//\//-}.json"
    cat "$WORK/run-${src//\//-}.json"
done
step "p2p run --compile over the video, twice (the second run reuses inductor's disk cache)"
for i in 1 2; do
    rm -f "$WORK/run-compile$i.json"
    timed capped "$(cap 90 150)" "${P2P[@]}" run "$WORK/data/labels.mp4" --engine "$WORK/gen" \
        --out "$WORK/out-compile" --batch 16 --compile --cuda-graphs --no-progress --overwrite \
        --summary-json "$WORK/run-compile$i.json"
    cat "$WORK/run-compile$i.json"
done

REPORT="bench/reports/$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 \
    | tr ' A-Z' '-a-z')-$(date -u +%Y-%m-%d)"
step "bench: torch rows (uint8 frames) at batches 1,16,64, compiled at 64 + end to end -> $REPORT"
rm -rf "$REPORT"
timed capped "$(cap 200 5)" "${P2P[@]}" bench --checkpoint "$WORK/gen" --backends torch --device cuda \
    --batch 1,16,64 --warmup 0.5 --duration 1.5 --video "$WORK/data/labels.mp4" \
    --e2e-batch 16 --out "$REPORT"
mkdir -p "$OUT/report" && cp "$REPORT"/* "$OUT/report/" 2>/dev/null

if [ -n "$PYCUDA_PID" ]; then
    kill -CONT -- "-$PYCUDA_PID" 2>/dev/null || true
    step "pycuda (built in the background): its slots and buffers"
    # Bounded: a build that is not done by now must not eat the suite's time.
    for _ in $(seq "$(cap 60 30)"); do kill -0 "$PYCUDA_PID" 2>/dev/null || break; sleep 1; done
    if kill -0 "$PYCUDA_PID" 2>/dev/null; then
        echo "pycuda: still building, skipped"; kill -- "-$PYCUDA_PID" 2>/dev/null
    elif wait "$PYCUDA_PID"; then
        PYTHONPATH="/tmp/pycuda-src${PYTHONPATH:+:$PYTHONPATH}" capped "$(cap 60 10)" "$PY" -m pytest -q \
            -p no:cacheprovider -o addopts="" tests/runtime -k pycuda -rfE 2>&1 | tail -6 \
            | tee -a "$OUT/tests-gpu.txt"
    else
        echo "pycuda: build failed"; tail -5 "$WORK/pycuda-build.log"
    fi
fi

step "the rest of the suite (the gpu-marked tests ran first), $JOBS workers"
timed capped "$(cap 600 10)" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
    -n "$JOBS" --timeout 240 -m "not gpu and not trt" -rfE tests 2>&1 | tail -60 \
    | tee "$OUT/tests.txt"

step "done: commit $REPORT; the run figures are in the log"
