# shellcheck shell=bash
# Sourced by quickstart.sh and quickstart_methods.sh after they set SAVE_DIR: the environment's defaults, the
# step timer, and the pre-training and COLT settings both use (sized for a 2-core CPU).
# Environment: PYTHON (default: python), EPOCHS (default: 10), SEED (default: 1).
PYTHON="${PYTHON:-python}"
EPOCHS="${EPOCHS:-10}"
SEED="${SEED:-1}"
# shellcheck disable=SC2034  # read by the scripts that source this file
start=$(date +%s)
mkdir -p "$SAVE_DIR"
# shellcheck source=cmds/step_times.sh
source cmds/step_times.sh
step_times_start "$SAVE_DIR/cpu_times.tsv"

# --aug_device gpu: the batched augmentation (here on the CPU, made in the 2 worker processes); on a loaded
# 2-core CPU it measured 0.7-1.4x the per-image path's speed (docs/benchmarks.md)
# shellcheck disable=SC2034
pretrain=(--dataset synthetic --save-dir "$SAVE_DIR" --overwrite --model res18 --width 16 --epochs "$EPOCHS"
          --batch_size 256 --lr 0.5 --temperature 0.2 --lr_warmup_epochs 2 --num_workers 2 --aug_device gpu
          --save_freq 5 --print_freq 5 --seed "$SEED")
# COLT's tailness EMA: --beta 0.5 averages over about the last two epochs; the released 0.97 averages over
# about 33, which in a 10-epoch run keeps mostly the first epoch's (untrained) scores
# shellcheck disable=SC2034
colt=(--COLT --warmup 3 --sample_interval 3 --budget 600 --beta 0.5)

probe_run() {  # probe_run RUN METHOD: full-shot and few-shot probes of SAVE_DIR/RUN, labelled METHOD
    local probe=(--checkpoint "$SAVE_DIR/$1/model.pt" --method "$2" --save-dir "$SAVE_DIR/probes" --overwrite
                 --cached_features --num_workers 2 --seed "$SEED")
    step "probe_$1_full" "$PYTHON" train_linear.py "$1_full" "${probe[@]}"
    step "probe_$1_few" "$PYTHON" train_fewshot.py "$1_few" "${probe[@]}"
}
