#!/usr/bin/env bash
# The README's main job on the embedded synthetic long-tailed dataset, sized for a 2-core CPU:
# SimCLR and SimCLR+COLT pre-training, full-shot and few-shot linear probing of both, and the report
# (table and plots). The quickstart replaces its own previous outputs under SAVE_DIR, nothing else.
# Environment: PYTHON (default: python), SAVE_DIR (default: runs/quickstart), EPOCHS (default: 10).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
SAVE_DIR="${SAVE_DIR:-runs/quickstart}"
EPOCHS="${EPOCHS:-10}"
start=$(date +%s)

# --aug_device gpu: the batched augmentation (here on the CPU, made in the 2 worker processes); on a loaded
# 2-core CPU it measured 0.7-1.4x the per-image path's speed (docs/benchmarks.md)
pretrain=(--dataset synthetic --save-dir "$SAVE_DIR" --overwrite --model res18 --width 16 --epochs "$EPOCHS"
          --batch_size 256 --lr 0.5 --temperature 0.2 --lr_warmup_epochs 2 --num_workers 2 --aug_device gpu
          --save_freq 5 --print_freq 5)
"$PYTHON" train_simclr.py simclr "${pretrain[@]}"
"$PYTHON" train_simclr.py colt "${pretrain[@]}" --COLT --warmup 3 --sample_interval 3 --budget 1000

probe=(--save-dir "$SAVE_DIR/probes" --overwrite --cached_features --num_workers 2)
for run in simclr colt; do
    method=SimCLR
    [[ "$run" == colt ]] && method=SimCLR+COLT
    "$PYTHON" train_linear.py "${run}_full" --checkpoint "$SAVE_DIR/$run/model.pt" --method "$method" "${probe[@]}"
    "$PYTHON" train_fewshot.py "${run}_few" --checkpoint "$SAVE_DIR/$run/model.pt" --method "$method" "${probe[@]}"
done

"$PYTHON" report.py "$SAVE_DIR/probes" --out "$SAVE_DIR/report"
echo "quickstart finished in $(( $(date +%s) - start )) s; outputs in $SAVE_DIR:" \
     "simclr/ and colt/ (checkpoints, log.txt, tensorboard/, COLT round pictures), probes/ (results.json)," \
     "report/ (table.md, table.csv, per_class.png, groups.png); tensorboard --logdir $SAVE_DIR"
