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

SAVE_DIR="${SAVE_DIR:-runs/quickstart}"
# shellcheck source=cmds/quickstart_settings.sh
source cmds/quickstart_settings.sh

step pretrain_simclr "$PYTHON" train_simclr.py simclr "${pretrain[@]}"
step pretrain_colt "$PYTHON" train_simclr.py colt "${pretrain[@]}" "${colt[@]}"

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

for run in simclr mak colt; do
    case "$run" in
        simclr) method=SimCLR ;;
        mak) method=SimCLR+MAK ;;
        colt) method=SimCLR+COLT ;;
    esac
    probe_run "$run" "$method"
done

step report "$PYTHON" report.py "$SAVE_DIR/probes" --out "$SAVE_DIR/report" \
    --selections "$SAVE_DIR/mak_split/random.json"
echo "quickstart finished in $(( $(date +%s) - start )) s ($(total_cpu) CPU-seconds; per step in $TIMES_FILE);" \
     "outputs in $SAVE_DIR: simclr/, colt/ and mak/ (checkpoints, log.txt, tensorboard/, COLT round records" \
     "and pictures), infer/ and mak_split/ (MAK features, chosen items, mak.png, random.json)," \
     "probes/ (results.json), report/ (table.md, table.csv, per_class.png, groups.png, picks.md, picks.png);" \
     "tensorboard --logdir $SAVE_DIR"
