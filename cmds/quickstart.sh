#!/usr/bin/env bash
# The README's main job on the embedded synthetic long-tailed dataset, sized for a 2-core CPU:
# SimCLR, SimCLR+COLT (online OOD sampling) and SimCLR+MAK (offline: inference, sampling, re-training)
# pre-training, full-shot and few-shot linear probing of all three, and the report
# (table and plots). The quickstart replaces its own previous outputs under SAVE_DIR, nothing else.
# Environment: PYTHON (default: python), SAVE_DIR (default: runs/quickstart), EPOCHS (default: 10),
# SEED (default: 1; the seed of pre-training and probing).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
SAVE_DIR="${SAVE_DIR:-runs/quickstart}"
EPOCHS="${EPOCHS:-10}"
SEED="${SEED:-1}"
start=$(date +%s)

# --aug_device gpu: the batched augmentation (here on the CPU, made in the 2 worker processes); on a loaded
# 2-core CPU it measured 0.7-1.4x the per-image path's speed (docs/benchmarks.md)
pretrain=(--dataset synthetic --save-dir "$SAVE_DIR" --overwrite --model res18 --width 16 --epochs "$EPOCHS"
          --batch_size 256 --lr 0.5 --temperature 0.2 --lr_warmup_epochs 2 --num_workers 2 --aug_device gpu
          --save_freq 5 --print_freq 5 --seed "$SEED")
"$PYTHON" train_simclr.py simclr "${pretrain[@]}"
"$PYTHON" train_simclr.py colt "${pretrain[@]}" --COLT --warmup 3 --sample_interval 3 --budget 1000

# MAK, offline: features of the embedded pool and of the long-tailed set from the SimCLR run, 1000 pool
# images chosen once (the budget of one COLT round), then SimCLR again from scratch with them added.
infer=(--checkpoint "$SAVE_DIR/simclr/model.pt" --save-dir "$SAVE_DIR/infer" --overwrite --num_workers 2)
"$PYTHON" infer_features.py pool_noaug "${infer[@]}" --inference_dataset synthetic_pool --inference_noAug
"$PYTHON" infer_features.py train_noaug "${infer[@]}" --inference_dataset synthetic --inference_noAug
"$PYTHON" infer_features.py pool_aug "${infer[@]}" --inference_dataset synthetic_pool --inference_repeat_time 4
"$PYTHON" sample_mak.py --inference_root "$SAVE_DIR/infer" --no_aug_sampling_dataset_inference_exp pool_noaug \
    --no_aug_training_dataset_inference_exp train_noaug --aug_sampling_dataset_inference_exp pool_aug \
    --loss_repeat_time 4 --sampling_num 1000 --split_save_dir "$SAVE_DIR/mak_split" --loss_txt_name mak --overwrite
"$PYTHON" train_simclr.py mak "${pretrain[@]}" --additional_dataset synthetic_pool \
    --additional_split "$SAVE_DIR/mak_split/mak.npy"

probe=(--save-dir "$SAVE_DIR/probes" --overwrite --cached_features --num_workers 2 --seed "$SEED")
for run in simclr mak colt; do
    case "$run" in
        simclr) method=SimCLR ;;
        mak) method=SimCLR+MAK ;;
        colt) method=SimCLR+COLT ;;
    esac
    "$PYTHON" train_linear.py "${run}_full" --checkpoint "$SAVE_DIR/$run/model.pt" --method "$method" "${probe[@]}"
    "$PYTHON" train_fewshot.py "${run}_few" --checkpoint "$SAVE_DIR/$run/model.pt" --method "$method" "${probe[@]}"
done

"$PYTHON" report.py "$SAVE_DIR/probes" --out "$SAVE_DIR/report"
echo "quickstart finished in $(( $(date +%s) - start )) s; outputs in $SAVE_DIR:" \
     "simclr/, colt/ and mak/ (checkpoints, log.txt, tensorboard/, COLT round pictures), infer/ and mak_split/" \
     "(MAK features, chosen items, mak.png), probes/ (results.json)," \
     "report/ (table.md, table.csv, per_class.png, groups.png); tensorboard --logdir $SAVE_DIR"
