#!/usr/bin/env bash
# Every CUDA path of snp-edge once on a real GPU, and the SNP paper's RTX 3090 column measured on this GPU
# (PyTorch eager, batch 64 and 1, FP16 and FP32, interleaved, CUDA-event timing), in one short run:
#
#   benchmarks/gpu_check.sh [OUT]        (OUT default: runs/gpu-check)
#
# 1. the `gpu`-marked tests; 2. prune the paper's presets (and --round-to 8 variants) of DeiT-S and DeiT-B with
# random weights (weight-only l1 scores: no calibration; speed does not depend on the criterion); 3. snp-edge
# bench --backend torch --device cuda, interleaved, for DeiT-S (+ SNP 2.0/1.3, paper widths and round-to 8) with
# DeiT-Tiny, and for DeiT-B (+ SNP 6.4, + heads 3.5); 4. finetune 20 steps with AMP (fp16 with GradScaler, bf16)
# and eval on CUDA, on a tiny synthetic image folder. Everything lands in OUT; OUT/gpu-check.tar.gz holds it all.
# SMOKE=1 DEVICE=cpu runs the same commands with tiny models and few runs (to check the script itself).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu-check}"
DEVICE="${DEVICE:-cuda}"
SMOKE="${SMOKE:-0}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
W="$OUT/models"
mkdir -p "$W"
LOG="$OUT/gpu-check.log"
FAILED=()
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

step() { echo "=== $* ($(date +%T))" | tee -a "$LOG"; }
SNP=(python3 -m snp_edge)
run() {  # run a command, log it, remember a failure, go on
    echo "\$ $*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        FAILED+=("$*")
        echo "FAILED: $*" | tee -a "$LOG"
    fi
}

step "environment"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1
  python3 -c "import sys, torch, timm, onnx, onnxruntime; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'timm', timm.__version__, 'onnx', onnx.__version__, 'ort', onnxruntime.__version__, \
'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"; } | tee -a "$LOG"

if [ "$SMOKE" = 1 ]; then
    S=(--model-arg img_size=32 --model-arg patch_size=8)
    PROTO=(--warmup 2 --runs 6)
    BATCHES=(1 4)
else
    S=()
    PROTO=(--warmup 50 --runs 300)
    BATCHES=(64 1)
fi
PRUNE=(--weights random --criterion l1 "${S[@]}")

step "1. gpu-marked tests"
if [ "$DEVICE" = cuda ]; then
    run python3 -m pytest -q -p no:cacheprovider -m gpu tests -rs
fi

step "2. prune (presets, random weights)"
run "${SNP[@]}" prune --model deit_small_patch16_224 "${PRUNE[@]}" --preset deit_s_2.0g --out "$W/deit_s_2.0g" --force
run "${SNP[@]}" prune --model deit_small_patch16_224 "${PRUNE[@]}" --preset deit_s_1.3g --out "$W/deit_s_1.3g" --force
run "${SNP[@]}" prune --model deit_small_patch16_224 "${PRUNE[@]}" --preset deit_s_2.0g --round-to 8 --out "$W/deit_s_2.0g_r8" --force
run "${SNP[@]}" prune --model deit_small_patch16_224 "${PRUNE[@]}" --preset deit_s_1.3g --round-to 8 --out "$W/deit_s_1.3g_r8" --force
run "${SNP[@]}" prune --model deit_base_patch16_224 "${PRUNE[@]}" --preset deit_b_6.4g --out "$W/deit_b_6.4g" --force
run "${SNP[@]}" prune --model deit_base_patch16_224 "${PRUNE[@]}" --preset deit_b_3.5g_heads --out "$W/deit_b_3.5g_heads" --force

step "3. bench: torch on $DEVICE, interleaved"
SMALL=(deit_small_patch16_224 "$W/deit_s_2.0g" "$W/deit_s_1.3g" "$W/deit_s_2.0g_r8" "$W/deit_s_1.3g_r8" deit_tiny_patch16_224)
BASE=(deit_base_patch16_224 "$W/deit_b_6.4g" "$W/deit_b_3.5g_heads")
for batch in "${BATCHES[@]}"; do
    for precision in fp16 fp32; do
        flag=()
        [ "$precision" = fp16 ] && [ "$DEVICE" = cuda ] && flag=(--fp16)
        run "${SNP[@]}" bench "${SMALL[@]}" --weights random "${S[@]}" --backend torch --device "$DEVICE" "${flag[@]}" \
            --batch "$batch" "${PROTO[@]}" --out "$OUT/bench/deit-s-$precision-b$batch" --force
        run "${SNP[@]}" bench "${BASE[@]}" --weights random "${S[@]}" --backend torch --device "$DEVICE" "${flag[@]}" \
            --batch "$batch" "${PROTO[@]}" --out "$OUT/bench/deit-b-$precision-b$batch" --force
    done
done

step "4. finetune with AMP and eval on $DEVICE"
run python3 - "$OUT/data" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root, rng = Path(sys.argv[1]), np.random.default_rng(0)
for split, n in (("train", 48), ("val", 16)):
    for c in range(3):
        (root / split / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = (rng.random((32, 32, 3)) * 80 + c * 80).astype(np.uint8)  # class = brightness band
            Image.fromarray(img).save(root / split / f"c{c}" / f"{i}.png")
EOF
TINY=(--model deit_tiny_patch16_224 --weights random --model-arg img_size=32 --model-arg patch_size=8 --model-arg num_classes=3)
run "${SNP[@]}" prune "${TINY[@]}" --target-gmacs 0.008 --criterion l1 --out "$W/tiny" --force
for amp in fp16 bf16; do
    run "${SNP[@]}" finetune "$W/tiny" --data "$OUT/data" --teacher original --amp "$amp" --epochs 1 --steps-per-epoch 20 \
        --batch-size 8 --no-aug --mixup 0 --cutmix 0 --workers 2 --out "$OUT/finetune-$amp" --force --json
done
run "${SNP[@]}" eval "$OUT/finetune-fp16/best" --data "$OUT/data" --attention-fidelity --batch-size 16 --json

step "done: ${#FAILED[@]} failed"
for f in "${FAILED[@]}"; do echo "  FAILED: $f" | tee -a "$LOG"; done
tar -czf "$OUT/gpu-check.tar.gz" -C "$OUT" --exclude models --exclude data --exclude "*.safetensors" --exclude "*.pt" \
    --exclude gpu-check.tar.gz . 2>/dev/null
[ "${#FAILED[@]}" = 0 ]
