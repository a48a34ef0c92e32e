#!/usr/bin/env bash
# The main job on built-in data, end to end: synthetic facades -> train -> export -> run -> bench.
# About 4 minutes on a 2-core CPU (5-6 with the venv set-up of a first `make demo`).
# Called by `make demo` (DEMO_DIR, PY set there).
set -euo pipefail
D=${DEMO_DIR:-demo}
PY=${PY:-python3}
p2p() { "$PY" -m p2p_deploy "$@"; }
step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

step "1/7 synthetic data: 16 label maps to translate, a 60-frame label video ($D/data)"
p2p synth "$D/data" --train 0 --val 0 --test 16 --labels 16 --size 128 --video 60

# A half-width generator at 128 px (ngf 32: 7 downsamplings, 10.5 M parameters) so that training
# shows learned facades in ~5 minutes on a 2-core CPU: 2 epochs of 400 steps, the second with
# the paper's linear decay. The full paper model (256 px, ngf 64) is `p2p train`'s default.
step "2/7 train on synthetic facades generated on the fly ($D/run)"
p2p train --out "$D/run" --image-size 128 --ngf 32 --ndf 32 --batch-size 4 \
    --synthetic-train 1600 --synthetic-val 16 --epochs 1 --epochs-decay 1 \
    --log-every 50 --sample-every 100 --no-progress

step "3/7 export to ONNX fp32 + fp16 (parity-checked) + INT8 (calibrated on synthetic facades, quality-gated)"
p2p export "$D/run" --out "$D/export" --fp16 --int8

step "4/7 run over the label maps (INT8 model: OpenVINO on the CPU when installed; input | output)"
p2p run "$D/data/labels" --engine "$D/export/model_int8.onnx" --out "$D/out/images" \
    --side-by-side --batch 4 --no-progress

step "5/7 run over the video (fp16 ONNX)"
p2p run "$D/data/labels.mp4" --engine "$D/export/model_fp16.onnx" --out "$D/out/video" \
    --batch 4 --no-progress

step "6/7 benchmark every backend this machine has against eager torch"
# Rows: eager torch, ONNX Runtime (fp32, fp16, INT8 graph), OpenVINO (fp32, bf16 hint, INT8).
p2p bench --checkpoint "$D/run" --onnx "$D/export/model.onnx" --onnx "$D/export/model_fp16.onnx" \
    --onnx "$D/export/model_int8.onnx" --folder "$D/data/labels" --batch 1,4 --warmup 0.5 \
    --duration 3 --max-frames 32 --out "$D/bench"

# Quality as deployed (`p2p eval`): the generator on the 16 test pairs, then the fp16 and INT8
# ONNX models against the fp32 ONNX on the same images (a few seconds each).
step "7/7 eval: the generator on its test split, fp16 and INT8 ONNX against fp32 ($D/eval*)"
p2p eval "$D/run" --data "$D/data" --split test --out "$D/eval" --no-progress
p2p eval "$D/export/model_fp16.onnx" --baseline "$D/export/model.onnx" --data "$D/data" \
    --split test --direction BtoA --out "$D/eval_fp16" --no-progress
p2p eval "$D/export/model_int8.onnx" --baseline "$D/export/model.onnx" --data "$D/data" \
    --split test --direction BtoA --out "$D/eval_int8" --no-progress

cat <<MSG

Demo done in $(( $(date +%s) - t0 )) s. Results:
  training run     $D/run             (samples/*.png, loss_curve.png, val.csv, tb/ for TensorBoard)
  generator        $D/run/checkpoints/latest/generator.safetensors
  exported models  $D/export          (model.onnx, model_fp16.onnx, model_int8.onnx, *.json)
  translated       $D/out/images      (input | output side by side), $D/out/video/labels.mp4
  benchmark        $D/bench/report.md (+ report.json, latency.png, throughput.png)
  quality          $D/eval/eval.json (+ eval.csv); input | output | target grids:
                   $D/eval/best.png, $D/eval/worst.png
                   fp16 vs fp32: $D/eval_fp16/eval.json, INT8 vs fp32: $D/eval_int8/eval.json
MSG
