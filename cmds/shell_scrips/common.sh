#!/usr/bin/env bash
# Shared body of the per-dataset launchers: parse the original scripts' flags, then run pre-training
# (plain python for one process, torchrun for several), full-shot and few-shot linear probing, stopping at
# the first failing step.
# A dataset script sets the D_* defaults below and calls: main "$@"
# shellcheck disable=SC2034,SC2153  # the D_* variables are set by the sourcing script

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python}"

usage() {
    cat <<EOF
usage: $(basename "$0") [options]
  -e, --epochs N            pre-training epochs (default ${D_EPOCHS})
  -s, --split NAME          long-tailed split, a name in --split_dir or a file (default ${D_SPLIT})
  -p, --port N              master port (default 4833)
  -w, --workers N           data-loading workers per process (default 10)
  -g, --GPU_NUM N           processes (GPUs) per node (default 1)
  --nnodes N --node_rank R --master_addr HOST
                            several nodes (default: SLURM's variables when present, else one node)
  --lr X                    pre-training learning rate (default ${D_LR})
  --batch_size N            global batch size (default ${D_BATCH})
  --temp X                  temperature (default 0.2)
  --save_dir NAME           method name; runs go to checkpoints/${D_DATASET}/<NAME>_<split> (default SimCLR)
  --resume True|False       continue the pre-training run
  --COLT True|False         SimCLR+COLT (default False)
  --budget N --sample_interval N --warmup N --k_largest_logits N --k_means_clusters N
  --sup_weight X --cluster_temperature X --sample_set NAME
                            COLT settings (defaults 10000, 25, 100, 10, 10, ${D_SUP_WEIGHT}, 1.0, ${D_SAMPLE_SET})
  --ood_scorer NAME         COLT's OOD scoring: clusters, neighbours or random (default: train_simclr.py's)
  --additional_dataset NAME --additional_split FILE --additional_data NPY --additional_dataset_root DIR
                            extra pool items chosen offline (MAK: sampling.sh writes the split; not with --COLT)
  --data, --data_root DIR   dataset root (default \$DATA, else ~/data; never the checkout's data/ package)
  --ood_data PATH           OOD pool (default \$OOD_DATA${D_OOD_DEFAULT:+, else ${D_OOD_DEFAULT}})
  --split_dir DIR           folder of split files, or the published split/ folder as it is (its
                            subfolders are searched) (default splits/${D_DATASET})
  --runs_dir DIR            where runs and probes go (default checkpoints/${D_DATASET} in the repository)
  --only_finetuning True    skip pre-training; --few_shot_only True: only few-shot probing
  --test_only True          probes only evaluate their saved heads
  --width N --cached_features True --probe_epochs N --fewshot_epochs N
                            smaller/faster runs (defaults 64, False, 30, 100)
  --dry_run                 print the commands without running them
EOF
}

die_usage() {
    echo "error: $1" >&2
    usage >&2
    exit 2
}

as_bool() {  # True/False in any case, as the original scripts wrote them
    case "${2,,}" in
        true|1|yes) echo 1 ;;
        false|0|no) echo 0 ;;
        *) die_usage "$1 takes True or False, got '$2'" ;;
    esac
}

published_subfolders() {  # where the published split/ folder keeps this dataset's files (data/build.py agrees)
    case "$D_DATASET" in
        cifar10) echo "cifar10 cifar10_imbSub_with_subsets" ;;
        cifar100) echo "cifar100 cifar100_imbSub_with_subsets" ;;
    esac
}

split_path() {  # a file as given, else <split_dir>[/<published subfolder>]/<name><ext>, else <split_dir>/<name><ext>
    if [[ -f "$1" ]]; then echo "$1"; return; fi
    local sub
    for sub in $(published_subfolders); do
        if [[ ! -f "${SPLIT_DIR}/$1${D_SPLIT_EXT}" && -f "${SPLIT_DIR}/${sub}/$1${D_SPLIT_EXT}" ]]; then
            echo "${SPLIT_DIR}/${sub}/$1${D_SPLIT_EXT}"
            return
        fi
    done
    echo "${SPLIT_DIR}/$1${D_SPLIT_EXT}"
}

run_step() {  # print, log to bash_log.txt, run; set -e stops the script at the first failure
    printf '%q ' "$@"
    echo
    if (( ! DRY_RUN )); then
        mkdir -p "$RUN_DIR"
        { printf '%s ' "$(date '+%F %T')"; printf '%q ' "$@"; echo; } >> "$RUN_DIR/bash_log.txt"
        "$@"
    fi
}

parse() {
    EPOCHS="$D_EPOCHS"; SPLIT="$D_SPLIT"; PORT=4833; WORKERS=10; GPUS=1; LR="$D_LR"; BATCH="$D_BATCH"
    TEMP=0.2; SAVE_DIR=SimCLR; RESUME=0; COLT=0; BUDGET=10000; INTERVAL=25; WARMUP=100; TOPK=10
    CLUSTERS=10; SUP_WEIGHT="$D_SUP_WEIGHT"; CLUSTER_T=1.0; SAMPLE_SET="$D_SAMPLE_SET"
    DATA="${DATA:-$HOME/data}"; OOD="${OOD_DATA:-}"; SPLIT_DIR=""; RUNS=""; ONLY_FT=0; FEW_ONLY=0; TEST_ONLY=0
    WIDTH=64; CACHED=0; PROBE_EPOCHS=30; FEW_EPOCHS=100; DRY_RUN=0
    OOD_SCORER=""; ADD_DATASET=""; ADD_SPLIT=""; ADD_DATA=""; ADD_ROOT=""
    NNODES="${SLURM_NNODES:-1}"; NODE_RANK="${SLURM_NODEID:-0}"; MASTER_ADDR=127.0.0.1
    if [[ -n "${SLURM_JOB_NODELIST:-}" ]] && command -v scontrol > /dev/null; then
        MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
    fi
    while (( $# )); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --dry_run) DRY_RUN=1; shift; continue ;;
        esac
        (( $# >= 2 )) || die_usage "$1 needs a value"
        [[ "$2" != --* ]] || die_usage "$1 needs a value, got the option '$2'"
        case "$1" in
            -e|--epochs) EPOCHS="$2" ;;
            -s|--split) SPLIT="$2" ;;
            -p|--port) PORT="$2" ;;
            -w|--workers) WORKERS="$2" ;;
            -g|--GPU_NUM) GPUS="$2" ;;
            --nnodes) NNODES="$2" ;;
            --node_rank) NODE_RANK="$2" ;;
            --master_addr) MASTER_ADDR="$2" ;;
            --lr) LR="$2" ;;
            --batch_size) BATCH="$2" ;;
            --temp) TEMP="$2" ;;
            --save_dir) SAVE_DIR="$2" ;;
            --resume) RESUME="$(as_bool "$1" "$2")" ;;
            --COLT) COLT="$(as_bool "$1" "$2")" ;;
            --budget) BUDGET="$2" ;;
            --sample_interval) INTERVAL="$2" ;;
            --warmup) WARMUP="$2" ;;
            --k_largest_logits) TOPK="$2" ;;
            --k_means_clusters) CLUSTERS="$2" ;;
            --sup_weight) SUP_WEIGHT="$2" ;;
            --cluster_temperature) CLUSTER_T="$2" ;;
            --sample_set) SAMPLE_SET="$2" ;;
            --ood_scorer) OOD_SCORER="$2" ;;
            --additional_dataset) ADD_DATASET="$2" ;;
            --additional_split) ADD_SPLIT="$2" ;;
            --additional_data) ADD_DATA="$2" ;;
            --additional_dataset_root) ADD_ROOT="$2" ;;
            --data|--data_root) DATA="$2" ;;
            --ood_data) OOD="$2" ;;
            --split_dir) SPLIT_DIR="$2" ;;
            --runs_dir) RUNS="$2" ;;
            --only_finetuning) ONLY_FT="$(as_bool "$1" "$2")" ;;
            --few_shot_only) FEW_ONLY="$(as_bool "$1" "$2")" ;;
            --test_only) TEST_ONLY="$(as_bool "$1" "$2")" ;;
            --width) WIDTH="$2" ;;
            --cached_features) CACHED="$(as_bool "$1" "$2")" ;;
            --probe_epochs) PROBE_EPOCHS="$2" ;;
            --fewshot_epochs) FEW_EPOCHS="$2" ;;
            *) die_usage "unknown option '$1'" ;;
        esac
        shift 2
    done
    [[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || die_usage "-g takes a positive number of processes, got '$GPUS'"
    [[ "$NNODES" =~ ^[1-9][0-9]*$ ]] || die_usage "--nnodes takes a positive number, got '$NNODES'"
    SPLIT_DIR="${SPLIT_DIR:-$REPO_ROOT/splits/$D_DATASET}"
    if [[ -z "$OOD" && -n "${D_OOD_DEFAULT:-}" ]]; then
        OOD="$DATA/$D_OOD_DEFAULT"
    fi
    # paths are relative to where the script was started; main() then works from the repository root
    DATA="$(realpath -m -- "$DATA")"
    SPLIT_DIR="$(realpath -m -- "$SPLIT_DIR")"
    RUNS="$(realpath -m -- "${RUNS:-$REPO_ROOT/checkpoints/$D_DATASET}")"
    if [[ -n "$OOD" ]]; then OOD="$(realpath -m -- "$OOD")"; fi
    if [[ -f "$SPLIT" ]]; then SPLIT="$(realpath -- "$SPLIT")"; fi
    # a split file as given; a bare name (MAK/<name>) is looked up by train_simclr.py in splits/<pool>/
    if [[ -e "$ADD_SPLIT" ]]; then ADD_SPLIT="$(realpath -- "$ADD_SPLIT")"; fi
    if [[ -n "$ADD_DATASET" && "${ADD_DATASET,,}" != none && -z "$ADD_DATA" && -n "${D_OOD_DEFAULT:-}" ]]; then
        ADD_DATA="$OOD"  # the same pool as COLT's
    fi
    if [[ -n "$ADD_DATA" ]]; then ADD_DATA="$(realpath -m -- "$ADD_DATA")"; fi
    if [[ -n "$ADD_ROOT" ]]; then ADD_ROOT="$(realpath -m -- "$ADD_ROOT")"; fi
}

main() {
    parse "$@"
    cd "$REPO_ROOT"
    local name="${SAVE_DIR}_${SPLIT##*/}"
    name="${name%.npy}"
    name="${name%.txt}"
    local runs="$RUNS"
    RUN_DIR="$runs/$name"

    local pretrain=(train_simclr.py "$name" --dataset "$D_DATASET" --data "$DATA"
                    --trainSplit "$(split_path "$SPLIT")" --save-dir "$runs" --model "$D_MODEL" --width "$WIDTH"
                    --epochs "$EPOCHS" --batch_size "$BATCH" --lr "$LR" --temperature "$TEMP"
                    --num_workers "$WORKERS")
    if (( COLT )); then
        pretrain+=(--COLT --budget "$BUDGET" --sample_interval "$INTERVAL" --warmup "$WARMUP"
                   --k_largest_logits "$TOPK" --k_means_clusters "$CLUSTERS" --sup_weight "$SUP_WEIGHT"
                   --cluster_temperature "$CLUSTER_T" --sample_set "$SAMPLE_SET")
        if [[ -n "$OOD" ]]; then pretrain+=(--ood_data "$OOD"); fi
        if [[ -n "$OOD_SCORER" ]]; then pretrain+=(--ood_scorer "$OOD_SCORER"); fi
    fi
    if [[ -n "$ADD_DATASET" ]]; then  # MAK: the extra items sampled offline, the same for the whole run
        pretrain+=(--additional_dataset "$ADD_DATASET")
        if [[ -n "$ADD_SPLIT" ]]; then pretrain+=(--additional_split "$ADD_SPLIT"); fi
        if [[ -n "$ADD_DATA" ]]; then pretrain+=(--additional_data "$ADD_DATA"); fi
        if [[ -n "$ADD_ROOT" ]]; then pretrain+=(--additional_dataset_root "$ADD_ROOT"); fi
    fi
    if (( RESUME )); then pretrain+=(--resume); fi
    # One process needs no torchrun, and its failures then end in the project's one-line error. Several
    # processes: check every input in one plain process first, so that bad input is not buried under
    # torchrun's ChildFailedError report.
    local check=()
    if (( GPUS == 1 && NNODES == 1 )); then
        pretrain=("$PYTHON" "${pretrain[@]}")
    else
        check=("$PYTHON" "${pretrain[@]}" --check_only)
        pretrain=("$PYTHON" -m torch.distributed.run --nproc_per_node="$GPUS" --nnodes="$NNODES"
                  --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT" "${pretrain[@]}")
    fi

    local few_split="${SPLIT##*/}"
    few_split="$(split_path "${few_split/_D_i/_S_b}")"
    [[ -n "$D_FEWSHOT_SPLIT" ]] && few_split="$(split_path "$D_FEWSHOT_SPLIT")"
    local probe=(--checkpoint "$RUN_DIR/model.pt" --dataset "$D_DATASET" --data "$DATA"
                 --valSplit "$(split_path "$D_VAL_SPLIT")" --save-dir "$runs/probes" --method "$SAVE_DIR"
                 --num_workers "$WORKERS")
    if [[ -n "$D_TEST_SPLIT" ]]; then probe+=(--testSplit "$(split_path "$D_TEST_SPLIT")"); fi
    if (( CACHED )); then probe+=(--cached_features); fi
    if (( TEST_ONLY )); then probe+=(--test_only); fi

    if (( ! ONLY_FT && ! FEW_ONLY && ! TEST_ONLY )); then
        if (( ${#check[@]} )); then run_step "${check[@]}"; fi
        run_step "${pretrain[@]}"
    fi
    if (( ! FEW_ONLY )); then
        run_step "$PYTHON" train_linear.py "${name}_full" "${probe[@]}" --trainSplit "$(split_path "$D_FULL_SPLIT")" \
            --epochs "$PROBE_EPOCHS"
    fi
    run_step "$PYTHON" train_fewshot.py "${name}_few" "${probe[@]}" --trainSplit "$few_split" \
        --epochs "$FEW_EPOCHS"
}
