#!/usr/bin/env bash
# The README's main job: SimCLR pre-training on the embedded synthetic long-tailed dataset, sized for a
# 2-core CPU (a few minutes). Later steps (COLT, probing, the report) are added here as they land.
# Environment: PYTHON (default: python), SAVE_DIR (default: runs/quickstart), EPOCHS (default: 15).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
SAVE_DIR="${SAVE_DIR:-runs/quickstart}"
EPOCHS="${EPOCHS:-15}"

start=$(date +%s)
"$PYTHON" train_simclr.py simclr --dataset synthetic --save-dir "$SAVE_DIR" --overwrite \
    --model res18 --width 16 --epochs "$EPOCHS" --batch_size 256 --lr 0.5 --temperature 0.2 \
    --lr_warmup_epochs 2 --num_workers 2 --save_freq 5 --print_freq 5
echo "quickstart finished in $(( $(date +%s) - start )) s; outputs in $SAVE_DIR/simclr" \
     "(log.txt, args.json, model.pt, tensorboard/: tensorboard --logdir $SAVE_DIR)"
