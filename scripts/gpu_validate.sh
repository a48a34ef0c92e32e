#!/usr/bin/env bash
# GPU validation (issue "GPU validation"): everything only a GPU can show, in one call on a lent
# GPU machine, logs and the report under $OUT. Run from the repository root:
#
#   bash scripts/gpu_validate.sh            # OUT defaults to ./gpu-validate
#
# The lent machines have PyTorch (CUDA), onnx, onnxruntime (CPU), opencv-python-headless,
# typer, safetensors and pytest, but no TensorRT, no onnxruntime-gpu, no pycuda and no registry:
# the project runs from the carried tree with PYTHONPATH; missing pure-Python packages
# (rich, psutil, onnxscript, matplotlib, polygraphy...) must be carried as wheels in
# ./wheels (pip install --no-index --find-links wheels). A pycuda sdist placed in ./wheels is
# built if the CUDA headers are there; if not, the log says so.
#
# NOT YET RUN: written while no GPU was lent; the first session with a GPU runs it, fixes what
# fails, and commits the report it writes (bench/reports/<gpu>-<date>/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-validate}"
mkdir -p "$OUT"
PY="${PY:-python3}"
STEPS="${STEPS:-300}"
exec > >(tee "$OUT/validate.log") 2>&1

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "environment"
nvidia-smi || true
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"

if [ -d wheels ]; then
    step "carried wheels"
    "$PY" -m pip install -q --no-index --find-links wheels wheels/*.whl || echo "some wheels failed"
    if ls wheels/pycuda-*.tar.gz >/dev/null 2>&1; then
        step "pycuda from its sdist"
        if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda.h" ]; then
            "$PY" -m pip install -q --no-index --find-links wheels --no-build-isolation \
                wheels/pycuda-*.tar.gz || echo "pycuda: build failed"
        else
            echo "pycuda: no CUDA headers (cuda.h) under ${CUDA_HOME:-/usr/local/cuda}: not built"
        fi
    fi
fi
export PYTHONPATH="$PWD/.gpu-pkg${PYTHONPATH:+:$PYTHONPATH}"
# train/, export/, bench/ install as p2p_deploy.train/.export/.bench: mirror that layout.
rm -rf .gpu-pkg && mkdir -p .gpu-pkg && cp -r p2p_deploy .gpu-pkg/
for sub in train export bench; do cp -r "$sub" ".gpu-pkg/p2p_deploy/$sub"; done
p2p() { "$PY" -m p2p_deploy "$@"; }

step "tests (gpu-marked included)"
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests 2>&1 | tail -40 | tee "$OUT/tests.txt"

for mode in fp32 amp; do
    step "training at full size on CUDA, $mode, $STEPS steps"
    flag=""; [ "$mode" = amp ] && flag="--amp"
    /usr/bin/time -v "$PY" -m p2p_deploy train --out "$OUT/train-$mode" --device cuda $flag \
        --max-steps "$STEPS" --synthetic-train 400 --no-progress --log-every 50 \
        2> >(tee "$OUT/train-$mode.time" >&2) | tee "$OUT/train-$mode.log"
done

step "label video for the end-to-end run"
p2p synth "$OUT/data" --train 0 --val 0 --test 0 --labels 64 --size 256 --video 300

step "bench: eager fp32, fp16 channels-last (+CUDA graphs), at batches 1,4,16,64 + video"
p2p bench --checkpoint "$OUT/train-amp" --backends torch,onnxruntime --device cuda \
    --batch 1,4,16,64 --warmup 3 --duration 10 --video "$OUT/data/labels.mp4" \
    --out "bench/reports/$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 \
        | tr ' A-Z' '-a-z')-$(date -u +%Y-%m-%d)"

step "done: commit bench/reports/<gpu>-<date>/ and $OUT/*.txt figures in the notes"
