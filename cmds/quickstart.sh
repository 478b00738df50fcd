#!/usr/bin/env bash
# The README's main job on the embedded synthetic long-tailed dataset, sized for a 2-core CPU:
# SimCLR, SimCLR+COLT (online OOD sampling) and SimCLR+MAK (offline: inference, sampling, re-training)
# pre-training, full-shot and few-shot linear probing of all three, and the report (table, plots, and what
# each sampler picked from the pool against a random selection of the same size).
# The quickstart replaces its own previous outputs under SAVE_DIR, nothing else.
# Environment: PYTHON (default: python), SAVE_DIR (default: runs/quickstart), EPOCHS (default: 10),
# SEED (default: 1; the seed of pre-training, inference, sampling and probing).
# Each step's CPU time (user + sys of its processes), wall time and load average go to SAVE_DIR/cpu_times.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
SAVE_DIR="${SAVE_DIR:-runs/quickstart}"
EPOCHS="${EPOCHS:-10}"
SEED="${SEED:-1}"
start=$(date +%s)
mkdir -p "$SAVE_DIR"
# shellcheck source=cmds/step_times.sh
source cmds/step_times.sh
step_times_start "$SAVE_DIR/cpu_times.tsv"

# --aug_device gpu: the batched augmentation (here on the CPU, made in the 2 worker processes); on a loaded
# 2-core CPU it measured 0.7-1.4x the per-image path's speed (docs/benchmarks.md)
pretrain=(--dataset synthetic --save-dir "$SAVE_DIR" --overwrite --model res18 --width 16 --epochs "$EPOCHS"
          --batch_size 256 --lr 0.5 --temperature 0.2 --lr_warmup_epochs 2 --num_workers 2 --aug_device gpu
          --save_freq 5 --print_freq 5 --seed "$SEED")
# COLT's tailness EMA: --beta 0.5 averages over about the last two epochs; the released 0.97 averages over
# about 33, which in a 10-epoch run keeps mostly the first epoch's (untrained) scores
step pretrain_simclr "$PYTHON" train_simclr.py simclr "${pretrain[@]}"
step pretrain_colt "$PYTHON" train_simclr.py colt "${pretrain[@]}" --COLT --warmup 3 --sample_interval 3 \
    --budget 600 --beta 0.5

# MAK, offline: features of the embedded pool and of the long-tailed set from the SimCLR run, 600 pool
# images chosen once (the budget of one COLT round), then SimCLR again from scratch with them added; and a
# uniformly random choice of 600 (the random baseline of both samplers' picks; not re-trained here).
infer=(--checkpoint "$SAVE_DIR/simclr/model.pt" --save-dir "$SAVE_DIR/infer" --overwrite --num_workers 2
       --seed "$SEED")
step infer_pool "$PYTHON" infer_features.py pool_noaug "${infer[@]}" --inference_dataset synthetic_pool --inference_noAug
step infer_train "$PYTHON" infer_features.py train_noaug "${infer[@]}" --inference_dataset synthetic --inference_noAug
step infer_pool_aug "$PYTHON" infer_features.py pool_aug "${infer[@]}" --inference_dataset synthetic_pool \
    --inference_repeat_time 3
sampling=(--inference_root "$SAVE_DIR/infer" --no_aug_sampling_dataset_inference_exp pool_noaug
          --sampling_num 600 --split_save_dir "$SAVE_DIR/mak_split" --overwrite --seed "$SEED")
step sample_mak "$PYTHON" sample_mak.py "${sampling[@]}" --no_aug_training_dataset_inference_exp train_noaug \
    --aug_sampling_dataset_inference_exp pool_aug --loss_repeat_time 3 --loss_txt_name mak
step sample_random "$PYTHON" sample_mak.py "${sampling[@]}" --sampling_method random --loss_txt_name random
step pretrain_mak "$PYTHON" train_simclr.py mak "${pretrain[@]}" --additional_dataset synthetic_pool \
    --additional_split "$SAVE_DIR/mak_split/mak.npy"

probe=(--save-dir "$SAVE_DIR/probes" --overwrite --cached_features --num_workers 2 --seed "$SEED")
for run in simclr mak colt; do
    case "$run" in
        simclr) method=SimCLR ;;
        mak) method=SimCLR+MAK ;;
        colt) method=SimCLR+COLT ;;
    esac
    step "probe_${run}_full" "$PYTHON" train_linear.py "${run}_full" --checkpoint "$SAVE_DIR/$run/model.pt" \
        --method "$method" "${probe[@]}"
    step "probe_${run}_few" "$PYTHON" train_fewshot.py "${run}_few" --checkpoint "$SAVE_DIR/$run/model.pt" \
        --method "$method" "${probe[@]}"
done

step report "$PYTHON" report.py "$SAVE_DIR/probes" --out "$SAVE_DIR/report" \
    --selections "$SAVE_DIR/mak_split/random.json"
echo "quickstart finished in $(( $(date +%s) - start )) s ($(total_cpu) CPU-seconds; per step in $TIMES_FILE);" \
     "outputs in $SAVE_DIR: simclr/, colt/ and mak/ (checkpoints, log.txt, tensorboard/, COLT round records" \
     "and pictures), infer/ and mak_split/ (MAK features, chosen items, mak.png, random.json)," \
     "probes/ (results.json), report/ (table.md, table.csv, per_class.png, groups.png, picks.md, picks.png);" \
     "tensorboard --logdir $SAVE_DIR"
