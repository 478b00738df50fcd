#!/usr/bin/env bash
# Shared body of the MAK launchers (Jiang et al., NeurIPS 2021): pre-training with or without the pool items
# sampling chose (add_data_main), feature inference (inference_main) and sampling (sampling_main).
# Names follow the MAK release, computed in one place (pretrain_name, infer_name, split_name) so that every
# step finds what the step before it wrote. A script sets MAK_SCRIPT_DATASET and calls one *_main "$@".
# shellcheck disable=SC2034  # variables read by the sourcing script or by usage()

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPTS="cmds/shell_scrips"
PYTHON="${PYTHON:-python}"

die_usage() {
    echo "error: $1" >&2
    usage >&2
    exit 2
}

die() {  # bad state rather than a bad flag: no usage
    echo "error: $1" >&2
    exit 1
}

need_value() {  # a flag's value; a following --flag is none (it would swallow --dry_run and run for real)
    (( $# >= 2 )) || die_usage "$1 needs a value"
    [[ "$2" != --* ]] || die_usage "$1 needs a value, got the option '$2'"
}

as_bool() {  # True/False in any case, as the original scripts wrote them
    case "${2,,}" in
        true|1|yes) echo 1 ;;
        false|0|no) echo 0 ;;
        *) die_usage "$1 takes True or False, got '$2'" ;;
    esac
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

profile() {  # the defaults of one long-tailed dataset, by the names the release and the framework use
    case "${1,,}" in
        imagenet-100|imagenet100|imagenet)
            P_DATASET=imagenet100 P_NAME=imagenet-100 P_MODEL=res50 P_EPOCHS=1000 P_BATCH=256
            P_SPLIT=imageNet_100_LT_train P_SPLIT_EXT=.txt P_POOL=imagenet-900 P_POOL_SPLIT=ImageNet_900_train
            P_GPUS=2 P_INFER_SCRIPT=imagenet-100-inference.sh P_RELEASE_NAMES=1 ;;
        cifar10|cifar-10|cifar)
            P_DATASET=cifar10 P_NAME=cifar10 P_MODEL=res18 P_EPOCHS=2000 P_BATCH=512
            P_SPLIT=split1_D_i P_SPLIT_EXT=.npy P_POOL=300K_random_images P_POOL_SPLIT=300K_random_images.npy
            P_GPUS=1 P_INFER_SCRIPT=cifar-10-LT-inference.sh P_RELEASE_NAMES=0 ;;
        cifar100|cifar-100)
            P_DATASET=cifar100 P_NAME=cifar100 P_MODEL=res18 P_EPOCHS=2000 P_BATCH=512
            P_SPLIT=cifar100_split1_D_i P_SPLIT_EXT=.npy P_POOL=300K_random_images
            P_POOL_SPLIT=300K_random_images.npy P_GPUS=1 P_INFER_SCRIPT=cifar-100-LT-inference.sh P_RELEASE_NAMES=0 ;;
        *) die_usage "unknown --pretrain_dataset '$1' (imagenet-100, cifar10 or cifar100)" ;;
    esac
}

is_id_dataset() {  # the long-tailed datasets the framework reads; everything else is a pool
    case "${1,,}" in
        imagenet-100|imagenet100|imagenet|cifar10|cifar-10|cifar|cifar100|cifar-100|places|places365|places-lt|synthetic)
            return 0 ;;
        *) return 1 ;;
    esac
}

pool_kind() {  # POOL_KIND = list: image-list pools (split = a list); array: a .npy or folder (split = the
    # path); none: the embedded pool. Sets a variable, not output: an error must stop the script.
    case "${1,,}" in
        imagenet-900|imagenet900|imagenet_places365_mix|image_list|imagelist) POOL_KIND=list ;;
        300k_random_images|folder) POOL_KIND=array ;;
        synthetic_pool|synthetic-pool) POOL_KIND=none ;;
        *) die_usage "unknown pool '$1' (imagenet-900, imagenet_places365_mix, image_list, 300K_random_images, folder or synthetic_pool)" ;;
    esac
}

pool_folder() {  # splits/<this>/ holds a pool's lists and sample_mak.py's MAK/ splits (data/ood.py's names)
    case "${1,,}" in
        imagenet-900|imagenet900) echo imagenet900 ;;
        imagenet_places365_mix) echo imagenet_places365_mix ;;
        image_list|imagelist) echo image_list ;;
        300k_random_images) echo 300K_random_images ;;
        synthetic_pool|synthetic-pool) echo synthetic_pool ;;
        *) echo "$1" ;;
    esac
}

bare_name() {  # a split's name in run names: its file name without .txt / .npy
    local name="${1##*/}"
    name="${name%.npy}"
    echo "${name%.txt}"
}

pretrain_name() {  # ImageNet: the release's run name; CIFAR: the COLT launchers' (--save_dir SimCLR)
    if (( P_RELEASE_NAMES )); then
        echo "${SPLIT}_${MODEL}_scheduling_sgd_lr0.5_temp0.2_epoch${EPOCHS}_batch${BATCH}_s${SEED}"
    else
        echo "SimCLR_$(bare_name "$SPLIT")"
    fi
}

infer_name() {  # dataset, split name, 1 without augmentation, pre-training run name
    local suffix=""
    if (( $3 )); then suffix=_noAug; fi
    echo "Infer_${1}_${2}${suffix}__${4}"
}

parse_launch_flag() {  # flags every torchrun step shares; returns 1 if $1 is not one of them
    case "$1" in
        -p|--port) PORT="$2" ;;
        -w|--workers) WORKERS="$2" ;;
        -g|--GPU_NUM) GPUS="$2" ;;
        --nnodes) NNODES="$2" ;;
        --node_rank) NODE_RANK="$2" ;;
        --master_addr) MASTER_ADDR="$2" ;;
        *) return 1 ;;
    esac
}

launch_defaults() {
    PORT=4833; WORKERS=5; GPUS=""; NNODES="${SLURM_NNODES:-1}"; NODE_RANK="${SLURM_NODEID:-0}"
    MASTER_ADDR=127.0.0.1
    if [[ -n "${SLURM_JOB_NODELIST:-}" ]] && command -v scontrol > /dev/null; then
        MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
    fi
}

launcher() {  # one process: plain python; several: torchrun (batches and inference chunks are shared out)
    GPUS="${GPUS:-$P_GPUS}"
    [[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || die_usage "-g takes a positive number of processes, got '$GPUS'"
    [[ "$NNODES" =~ ^[1-9][0-9]*$ ]] || die_usage "--nnodes takes a positive number, got '$NNODES'"
    if (( GPUS == 1 && NNODES == 1 )); then
        LAUNCH=("$PYTHON")
    else
        LAUNCH=("$PYTHON" -m torch.distributed.run --nproc_per_node="$GPUS" --nnodes="$NNODES"
                --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT")
    fi
}

abs_path() {  # relative to where the script was started (main functions cd to the repository afterwards)
    realpath -m -- "$1"
}

id_split_path() {  # a file as given, else <split_dir>/<name><ext>
    if [[ -f "$1" ]]; then abs_path "$1"; else echo "${SPLIT_DIR}/$1${P_SPLIT_EXT}"; fi
}

pool_split_path() {  # split $1 of a pool of kind POOL_KIND: the path infer_features.py / train_simclr.py get
    case "$POOL_KIND" in
        list) if [[ -e "$1" ]]; then abs_path "$1"; else echo "${POOL_SPLIT_DIR}/${1%.txt}.txt"; fi ;;
        array) abs_path "$1" ;;
        none) echo "" ;;
    esac
}

common_paths() {  # after parsing: defaults that depend on the dataset, and absolute paths
    SPLIT_DIR="$(abs_path "${SPLIT_DIR:-$REPO_ROOT/splits/$P_DATASET}")"
    RUNS="$(abs_path "${RUNS:-$REPO_ROOT/checkpoints/$P_DATASET}")"
    DATA="$(abs_path "$DATA")"
}

# ----------------------------------------------------------------------------------------------- add-data
add_data_usage() {
    cat <<EOF
usage: $(basename "$0") [options]
MAK steps 1 and 4: SimCLR pre-training on ${P_NAME}-LT, alone (--additional_dataset None) or with the pool
items sampling.sh chose, then full-shot and few-shot linear probing. Runs go to <runs_dir>/<name>, the
name as the release's: ${P_SPLIT}_${P_MODEL}_scheduling_sgd_lr0.5_temp0.2_epoch<E>_batch<B>_s<seed>
[_addImagenet900<additional_split_name>].
  -e, --epochs N            pre-training epochs (default ${P_EPOCHS})
  -s, --split NAME          long-tailed split, a name in --split_dir or a file (default ${P_SPLIT})
  -g, --GPU_NUM N           processes (GPUs) per node; 1 runs without torchrun (default 1)
  -p, --port N              master port (default 4833)
  -w, --workers N           data-loading workers per process (default 5)
  --nnodes N --node_rank R --master_addr HOST
                            several nodes (default: SLURM's variables when present, else one node)
  --batch_size N            global batch size (default ${P_BATCH})
  --model NAME              encoder (default ${P_MODEL})
  --dataset NAME            long-tailed dataset (default ${P_NAME})
  --seed N                  seed of the run (default 1; the MAK paper: 10, 20, 30)
  --additional_dataset NAME None, imagenet-900, imagenet_places365_mix or image_list (default None)
  --additional_split S      the chosen items: MAK/<name> in --pool_split_dir (what sampling.sh writes) or a file
  --additional_split_name N part of the run name (default the split's file name)
  --additional_dataset_root DIR
                            image root of the pool's list (default --data)
  --method NAME             method name in the report (default SimCLR, or the split name without _s<seed>)
  --data, --data_root DIR   ImageNet root the lists are relative to (default \$DATA, else ~/data)
  --split_dir DIR           folder of the long-tailed and probe lists (default splits/${P_DATASET})
  --pool_split_dir DIR      folder of the pool's lists, with MAK/ (default splits/<pool>, e.g. splits/imagenet900)
  --runs_dir DIR            where runs and probes go (default checkpoints/${P_DATASET} in the repository)
  --resume True|False       continue the pre-training run (default False)
  --only_finetuning True    skip pre-training; --few_shot_only True: only few-shot probing
  --test_only True          probes only evaluate their saved heads
  --width N --max_steps_per_epoch N --cached_features True --probe_epochs N --fewshot_epochs N
                            smaller/faster runs (defaults 64, 0 = full epochs, False, 30, 100)
  --dry_run                 print the commands without running them
  -h, --help                this help
EOF
}

add_data_main() {
    local dataset="$MAK_SCRIPT_DATASET"
    profile "$dataset"
    usage() { add_data_usage; }
    launch_defaults
    EPOCHS=""; SPLIT=""; BATCH=""; MODEL=""; SEED=1; ADD_DATASET=None; ADD_SPLIT=""; ADD_NAME=""; ADD_ROOT=""
    METHOD=""; DATA="${DATA:-$HOME/data}"; SPLIT_DIR=""; POOL_SPLIT_DIR=""; RUNS=""; RESUME=0; ONLY_FT=0; FEW_ONLY=0
    TEST_ONLY=0; WIDTH=64; MAX_STEPS=0; CACHED=0; PROBE_EPOCHS=30; FEW_EPOCHS=100; DRY_RUN=0
    P_GPUS=1
    while (( $# )); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --dry_run) DRY_RUN=1; shift; continue ;;
        esac
        need_value "$@"
        parse_launch_flag "$1" "$2" || case "$1" in
            -e|--epochs) EPOCHS="$2" ;;
            -s|--split) SPLIT="$2" ;;
            --batch_size) BATCH="$2" ;;
            --model) MODEL="$2" ;;
            --dataset) dataset="$2" ;;
            --seed) SEED="$2" ;;
            --additional_dataset) ADD_DATASET="$2" ;;
            --additional_split) ADD_SPLIT="$2" ;;
            --additional_split_name) ADD_NAME="$2" ;;
            --additional_dataset_root) ADD_ROOT="$2" ;;
            --method) METHOD="$2" ;;
            --data|--data_root) DATA="$2" ;;
            --split_dir) SPLIT_DIR="$2" ;;
            --pool_split_dir) POOL_SPLIT_DIR="$2" ;;
            --runs_dir) RUNS="$2" ;;
            --resume) RESUME="$(as_bool "$1" "$2")" ;;
            --only_finetuning) ONLY_FT="$(as_bool "$1" "$2")" ;;
            --few_shot_only) FEW_ONLY="$(as_bool "$1" "$2")" ;;
            --test_only) TEST_ONLY="$(as_bool "$1" "$2")" ;;
            --width) WIDTH="$2" ;;
            --max_steps_per_epoch) MAX_STEPS="$2" ;;
            --cached_features) CACHED="$(as_bool "$1" "$2")" ;;
            --probe_epochs) PROBE_EPOCHS="$2" ;;
            --fewshot_epochs) FEW_EPOCHS="$2" ;;
            *) die_usage "unknown option '$1'" ;;
        esac
        shift 2
    done
    profile "$dataset"
    (( P_RELEASE_NAMES )) || die_usage "--dataset $dataset: re-train CIFAR with cifar-10-LT_extra.sh / cifar-100-LT_extra.sh --additional_dataset ..."
    P_GPUS=1
    EPOCHS="${EPOCHS:-$P_EPOCHS}"; SPLIT="${SPLIT:-$P_SPLIT}"; BATCH="${BATCH:-$P_BATCH}"; MODEL="${MODEL:-$P_MODEL}"
    launcher
    common_paths
    local name suffix=""
    if [[ "${ADD_DATASET,,}" != none ]]; then
        [[ -n "$ADD_SPLIT" ]] || die_usage "--additional_dataset $ADD_DATASET needs --additional_split (e.g. MAK/<name> as sampling.sh wrote it)"
        pool_kind "$ADD_DATASET"
        [[ "$POOL_KIND" == list ]] || die_usage "--additional_dataset takes None or an image-list pool here, got '$ADD_DATASET'"
        POOL_SPLIT_DIR="$(abs_path "${POOL_SPLIT_DIR:-$REPO_ROOT/splits/$(pool_folder "$ADD_DATASET")}")"
        ADD_SPLIT="$(pool_split_path "$ADD_SPLIT")"
        ADD_NAME="${ADD_NAME:-$(bare_name "$ADD_SPLIT")}"
        if [[ -n "$ADD_ROOT" ]]; then ADD_ROOT="$(abs_path "$ADD_ROOT")"; fi
        case "${ADD_DATASET,,}" in
            imagenet-900|imagenet900) suffix="_addImagenet900${ADD_NAME}" ;;
            imagenet_places365_mix) suffix="_addImagenetPlacesMix${ADD_NAME}" ;;
            *) suffix="_addImageList${ADD_NAME}" ;;
        esac
        METHOD="${METHOD:-${ADD_NAME%_s"$SEED"}}"
        if (( ! DRY_RUN && ! ONLY_FT && ! FEW_ONLY && ! TEST_ONLY )) && [[ ! -f "$ADD_SPLIT" ]]; then
            die "no chosen items at $ADD_SPLIT (make them with: $SCRIPTS/sampling.sh --pretrain_seed $SEED ...;" \
                "it writes MAK/<name> under --pool_split_dir)"
        fi
    fi
    METHOD="${METHOD:-SimCLR}"
    name="$(pretrain_name)${suffix}"
    cd "$REPO_ROOT"
    RUN_DIR="$RUNS/$name"

    local pretrain=("${LAUNCH[@]}" train_simclr.py "$name" --dataset "$P_DATASET" --data "$DATA"
                    --trainSplit "$(id_split_path "$SPLIT")" --save-dir "$RUNS" --model "$MODEL" --width "$WIDTH"
                    --epochs "$EPOCHS" --batch_size "$BATCH" --output_ch 128 --lr 0.5 --temperature 0.2
                    --optimizer sgd --num_workers "$WORKERS" --seed "$SEED")
    if [[ -n "$suffix" ]]; then
        pretrain+=(--additional_dataset "$ADD_DATASET" --additional_split "$ADD_SPLIT")
        if [[ -n "$ADD_ROOT" ]]; then pretrain+=(--additional_dataset_root "$ADD_ROOT"); fi
    fi
    if (( MAX_STEPS )); then pretrain+=(--max_steps_per_epoch "$MAX_STEPS"); fi
    if (( RESUME )); then pretrain+=(--resume); fi

    local probe=(--checkpoint "$RUN_DIR/model.pt" --dataset "$P_DATASET" --data "$DATA"
                 --valSplit "$(id_split_path imageNet_100_val)" --testSplit "$(id_split_path imageNet_100_test)"
                 --save-dir "$RUNS/probes" --method "$METHOD" --num_workers "$WORKERS")
    if (( CACHED )); then probe+=(--cached_features); fi
    if (( TEST_ONLY )); then probe+=(--test_only); fi

    if (( ! ONLY_FT && ! FEW_ONLY && ! TEST_ONLY )); then
        run_step "${pretrain[@]}"
    fi
    if (( ! FEW_ONLY )); then
        run_step "$PYTHON" train_linear.py "${name}_full" "${probe[@]}" \
            --trainSplit "$(id_split_path imageNet_100_train)" --epochs "$PROBE_EPOCHS"
    fi
    run_step "$PYTHON" train_fewshot.py "${name}_few" "${probe[@]}" \
        --trainSplit "$(id_split_path imageNet_100_train_1pct)" --epochs "$FEW_EPOCHS"
}

# ---------------------------------------------------------------------------------------------- inference
inference_usage() {
    cat <<EOF
usage: $(basename "$0") [options]
MAK step 2: features of a dataset or pool from the pre-training run, written to
<runs_dir>/Infer_<inference_dataset>_<split name>[_noAug]__<pre-training run name> (infer_features.py;
chunked, resumable: a re-run skips finished chunks).
  -e, --epochs N            pre-training epochs, part of the run name (default ${P_EPOCHS})
  -s, --split NAME          long-tailed split of the pre-training run (default ${P_SPLIT})
  --pretrain_seed N         seed of the pre-training run (default 10)
  --pretrain_dataset NAME   imagenet-100, cifar10 or cifar100 (default ${P_NAME})
  --model NAME              encoder, part of the run name (default ${P_MODEL})
  --batch_size N            pre-training batch, part of the run name; also the inference batch per process
                            (default ${P_BATCH})
  --pretrain_name NAME      the pre-training run (default from the flags above: $(pretrain_name_hint))
  --checkpoint FILE         default <runs_dir>/<pre-training run>/model.pt
  --inference_dataset NAME  the long-tailed set (${P_NAME}) or a pool (imagenet-900, imagenet_places365_mix,
                            image_list, 300K_random_images, folder, synthetic_pool) (default ${P_NAME})
  --inference_dataset_split S
                            long-tailed set: its split (name or file); image-list pool: its list (name in
                            --pool_split_dir or file); 300K_random_images: the .npy; folder: the folder
                            (default ${P_SPLIT})
  --inference_dataset_split_name N
                            the split's part of the output name (default the split's file name)
  --inference_dataset_root DIR
                            image root of an image-list pool (default --data)
  --inference_repeat_time R augmented passes (default 10)
  --inference_noAug True|False
                            one pass with the test transform instead (default False)
  --chunk_size N            items per output file (default: infer_features.py's)
  -g, --GPU_NUM N           processes; 1 runs without torchrun (default ${P_GPUS})
  -p, --port N              master port (default 4833)
  -w, --workers N           data-loading workers per process (default 5)
  --nnodes N --node_rank R --master_addr HOST
                            several nodes (default: SLURM's variables when present, else one node)
  --data, --data_root DIR   dataset root (default \$DATA, else ~/data)
  --split_dir DIR           folder of the long-tailed splits (default splits/${P_DATASET})
  --pool_split_dir DIR      folder of the pool's lists (default splits/<pool>, e.g. splits/imagenet900)
  --runs_dir DIR            folder of the runs and inference outputs (default checkpoints/${P_DATASET})
  --dry_run                 print the command without running it
  -h, --help                this help
EOF
}

pretrain_name_hint() {
    if (( P_RELEASE_NAMES )); then
        echo "<split>_<model>_scheduling_sgd_lr0.5_temp0.2_epoch<E>_batch<B>_s<pretrain_seed>"
    else
        echo "SimCLR_<split>, as cifar-*-LT_extra.sh --save_dir SimCLR names it"
    fi
}

parse_pretrain_flag() {  # flags that name the pre-training run (inference and sampling); 1 if not one
    case "$1" in
        -e|--epochs) EPOCHS="$2" ;;
        -s|--split) SPLIT="$2" ;;
        --pretrain_seed) SEED="$2" ;;
        --pretrain_dataset) PRETRAIN_DATASET="$2" ;;
        --model) MODEL="$2" ;;
        --batch_size) BATCH="$2" ;;
        --pretrain_name) PRETRAIN_NAME="$2" ;;
        --inference_dataset) INF_DATASET="$2" ;;
        --inference_dataset_split) INF_SPLIT="$2" ;;
        --inference_dataset_split_name) INF_SPLIT_NAME="$2" ;;
        --data|--data_root) DATA="$2" ;;
        --split_dir) SPLIT_DIR="$2" ;;
        --pool_split_dir) POOL_SPLIT_DIR="$2" ;;
        --runs_dir) RUNS="$2" ;;
        *) return 1 ;;
    esac
}

pretrain_defaults() {
    EPOCHS=""; SPLIT=""; SEED=10; PRETRAIN_DATASET="$MAK_SCRIPT_DATASET"; MODEL=""; BATCH=""; PRETRAIN_NAME=""
    INF_DATASET=""; INF_SPLIT=""; INF_SPLIT_NAME=""; DATA="${DATA:-$HOME/data}"; SPLIT_DIR=""; POOL_SPLIT_DIR=""
    RUNS=""; DRY_RUN=0
}

pretrain_finish() {  # after parsing: the dataset's defaults, paths, and the pre-training run's name
    profile "$PRETRAIN_DATASET"
    EPOCHS="${EPOCHS:-$P_EPOCHS}"; SPLIT="${SPLIT:-$P_SPLIT}"; BATCH="${BATCH:-$P_BATCH}"; MODEL="${MODEL:-$P_MODEL}"
    common_paths
    PRETRAIN_NAME="${PRETRAIN_NAME:-$(pretrain_name)}"
}

default_pool_split() {  # the dataset's own pool (ImageNet-900, <data>/300K_random_images.npy) needs no split
    if [[ -z "$INF_SPLIT" && "${INF_DATASET,,}" == "${P_POOL,,}" ]]; then
        INF_SPLIT="$P_POOL_SPLIT"
        if [[ "$POOL_KIND" == array ]]; then INF_SPLIT="$DATA/$P_POOL_SPLIT"; fi
    fi
}

infer_command_hint() {  # the launcher command that writes inference output $1 (pool|train|aug)
    local cmd=("$SCRIPTS/$P_INFER_SCRIPT" --pretrain_dataset "$P_NAME" --pretrain_seed "$SEED" --epochs "$EPOCHS"
               --batch_size "$BATCH" -s "$SPLIT" --model "$MODEL")
    case "$1" in
        pool) cmd+=(--inference_dataset "$INF_DATASET" --inference_dataset_split "$INF_SPLIT"
                    --inference_repeat_time 1 --inference_noAug True) ;;
        train) cmd+=(--inference_dataset "$P_NAME" --inference_dataset_split "$SPLIT" --inference_repeat_time 1
                     --inference_noAug True) ;;
        aug) cmd+=(--inference_dataset "$INF_DATASET" --inference_dataset_split "$INF_SPLIT"
                   --inference_repeat_time "$LOSS_REPEAT") ;;
    esac
    if [[ -n "$INF_SPLIT_NAME" && "$1" != train ]]; then cmd+=(--inference_dataset_split_name "$INF_SPLIT_NAME"); fi
    cmd+=(--pretrain_name "$PRETRAIN_NAME" --data "$DATA" --split_dir "$SPLIT_DIR" --runs_dir "$RUNS")
    if [[ -n "$POOL_SPLIT_DIR" ]]; then cmd+=(--pool_split_dir "$POOL_SPLIT_DIR"); fi
    printf '%q ' "${cmd[@]}"
}

inference_main() {
    profile "$MAK_SCRIPT_DATASET"
    usage() { inference_usage; }
    launch_defaults
    pretrain_defaults
    local checkpoint="" repeats=10 no_aug=0 root="" chunk=""
    while (( $# )); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --dry_run) DRY_RUN=1; shift; continue ;;
        esac
        need_value "$@"
        parse_launch_flag "$1" "$2" || parse_pretrain_flag "$1" "$2" || case "$1" in
            --checkpoint) checkpoint="$2" ;;
            --inference_repeat_time) repeats="$2" ;;
            --inference_noAug) no_aug="$(as_bool "$1" "$2")" ;;
            --inference_dataset_root) root="$2" ;;
            --chunk_size) chunk="$2" ;;
            *) die_usage "unknown option '$1'" ;;
        esac
        shift 2
    done
    pretrain_finish
    launcher
    INF_DATASET="${INF_DATASET:-$P_NAME}"
    local split
    if is_id_dataset "$INF_DATASET"; then
        INF_SPLIT="${INF_SPLIT:-$SPLIT}"
        split="$(id_split_path "$INF_SPLIT")"
    else
        pool_kind "$INF_DATASET"
        default_pool_split
        [[ -n "$INF_SPLIT" || "$POOL_KIND" == none ]] || \
            die_usage "--inference_dataset $INF_DATASET needs --inference_dataset_split"
        POOL_SPLIT_DIR="$(abs_path "${POOL_SPLIT_DIR:-$REPO_ROOT/splits/$(pool_folder "$INF_DATASET")}")"
        split="$(pool_split_path "$INF_SPLIT")"
    fi
    INF_SPLIT_NAME="${INF_SPLIT_NAME:-$(bare_name "${INF_SPLIT:-all}")}"
    checkpoint="$(abs_path "${checkpoint:-$RUNS/$PRETRAIN_NAME/model.pt}")"
    if [[ -n "$root" ]]; then root="$(abs_path "$root")"; fi
    cd "$REPO_ROOT"
    RUN_DIR="$RUNS/$PRETRAIN_NAME"
    if (( ! DRY_RUN )) && [[ ! -f "$checkpoint" ]]; then
        die "no pre-training checkpoint at $checkpoint (make it with: $SCRIPTS/imagenet-100-add-data.sh or" \
            "cifar-*-LT_extra.sh --save_dir SimCLR, with the same split, seed, epochs and batch size)"
    fi

    local cmd=("${LAUNCH[@]}" infer_features.py "$(infer_name "$INF_DATASET" "$INF_SPLIT_NAME" "$no_aug" "$PRETRAIN_NAME")"
               --checkpoint "$checkpoint" --inference_dataset "$INF_DATASET" --data "$DATA" --save-dir "$RUNS"
               --batch_size "$BATCH" --num_workers "$WORKERS" --seed "$SEED")
    if [[ -n "$split" ]]; then cmd+=(--inference_dataset_split "$split"); fi
    if (( no_aug )); then cmd+=(--inference_noAug); else cmd+=(--inference_repeat_time "$repeats"); fi
    if [[ -n "$root" ]]; then cmd+=(--inference_dataset_root "$root"); fi
    if [[ -n "$chunk" ]]; then cmd+=(--chunk_size "$chunk"); fi
    run_step "${cmd[@]}"
}

# ----------------------------------------------------------------------------------------------- sampling
sampling_usage() {
    cat <<EOF
usage: $(basename "$0") [options]
MAK step 3 (sample_mak.py, one process): choose --sampling_num pool items from the inference outputs
Infer_<pool>_<split name>_noAug__<run>, Infer_<dataset>_<split>_noAug__<run> and Infer_<pool>_<split name>__<run>
in --runs_dir, and write the split <pool_split_dir>/MAK/<name> (CIFAR: MAK/<split>/<name>, one folder per
long-tailed split) with <name>.json and <name>.png, where
<name> = optimize_<loss_weight>lossR<loss_repeat_time>_nearK<K_means_num>_coreR<core_sample_ratio>_num<sampling_num>_s<pretrain_seed>
(random_num<N>_s<seed> / kcenter_num<N>_s<seed> for those methods). Re-train on it with
imagenet-100-add-data.sh --additional_dataset imagenet-900 --additional_split MAK/<name> --additional_split_name <name>,
or cifar-10-LT_extra.sh --save_dir MAK --additional_dataset 300K_random_images --additional_split MAK/<split>/<name>.
  -e, --epochs N            pre-training epochs, part of the run name (default: the dataset's, 1000 ImageNet-100)
  -s, --split NAME          long-tailed split of the pre-training run (default: the dataset's)
  --pretrain_seed N         seed of the pre-training run; also the sampling seed (default 10)
  --pretrain_dataset NAME   imagenet-100, cifar10 or cifar100 (default ${P_NAME})
  --model NAME --batch_size N
                            part of the run name (default: the dataset's)
  --pretrain_name NAME      the pre-training run (default from the flags above)
  --inference_dataset NAME  the pool (default imagenet-900 for ImageNet-100, 300K_random_images for CIFAR)
  --inference_dataset_split S
                            the pool's split as given to inference (default ImageNet_900_train /
                            <data>/300K_random_images.npy)
  --inference_dataset_split_name N
                            its part of the inference names (default the split's file name)
  --sampling_method M       mak, random (offline random K) or kcenter (default mak)
  --K_means_num K           k-means clusters of the long-tailed set (default 10)
  --loss_weight a           score = a*z(ECLE) - (1-a)*z(distance) (default 0.5)
  --core_sample_ratio r     candidates = the top r*K scores (default 1.5)
  --sampling_num K          budget (default 10000)
  --loss_repeat_time R      augmented passes used for ECLE (default 10)
  --overwrite True|False    replace a split of the same name (default False)
  --data, --data_root DIR   dataset root, for the default 300K pool path (default \$DATA, else ~/data)
  --split_dir DIR           folder of the long-tailed splits (default splits/<dataset>)
  --pool_split_dir DIR      the split goes to DIR/MAK (default splits/<pool>, e.g. splits/imagenet900, where
                            train_simclr.py and add-data resolve --additional_split MAK/...)
  --runs_dir DIR            folder of the inference outputs (default checkpoints/<dataset>)
  --dry_run                 print the command without running it
  -h, --help                this help
EOF
}

sampling_main() {
    profile "$MAK_SCRIPT_DATASET"
    usage() { sampling_usage; }
    pretrain_defaults
    local method=mak clusters=10 weight=0.5 ratio=1.5 num=10000 overwrite=0
    LOSS_REPEAT=10
    while (( $# )); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --dry_run) DRY_RUN=1; shift; continue ;;
        esac
        need_value "$@"
        parse_pretrain_flag "$1" "$2" || case "$1" in
            --sampling_method) method="$2" ;;
            --K_means_num) clusters="$2" ;;
            --loss_weight) weight="$2" ;;
            --core_sample_ratio) ratio="$2" ;;
            --sampling_num) num="$2" ;;
            --loss_repeat_time) LOSS_REPEAT="$2" ;;
            --overwrite) overwrite="$(as_bool "$1" "$2")" ;;
            *) die_usage "unknown option '$1'" ;;
        esac
        shift 2
    done
    case "$method" in
        mak|random|kcenter) ;;
        *) die_usage "--sampling_method takes mak, random or kcenter, got '$method'" ;;
    esac
    pretrain_finish
    INF_DATASET="${INF_DATASET:-$P_POOL}"
    is_id_dataset "$INF_DATASET" && die_usage "--inference_dataset is the pool to sample from, got the dataset '$INF_DATASET'"
    pool_kind "$INF_DATASET"
    default_pool_split
    local split_name="${INF_SPLIT_NAME:-$(bare_name "$INF_SPLIT")}"
    POOL_SPLIT_DIR="$(abs_path "${POOL_SPLIT_DIR:-$REPO_ROOT/splits/$(pool_folder "$INF_DATASET")}")"
    local name
    case "$method" in
        mak) name="optimize_${weight}lossR${LOSS_REPEAT}_nearK${clusters}_coreR${ratio}_num${num}_s${SEED}" ;;
        *) name="${method}_num${num}_s${SEED}" ;;
    esac
    # CIFAR has five long-tailed splits and one pool: one folder per split keeps their choices apart
    local save_dir="$POOL_SPLIT_DIR/MAK"
    if (( ! P_RELEASE_NAMES )); then save_dir+="/$(bare_name "$SPLIT")"; fi
    local pool train aug
    pool="$(infer_name "$INF_DATASET" "$split_name" 1 "$PRETRAIN_NAME")"
    train="$(infer_name "$P_NAME" "$(bare_name "$SPLIT")" 1 "$PRETRAIN_NAME")"
    aug="$(infer_name "$INF_DATASET" "$split_name" 0 "$PRETRAIN_NAME")"
    local cmd=("$PYTHON" sample_mak.py --inference_root "$RUNS" --no_aug_sampling_dataset_inference_exp "$pool")
    local needed=(pool)
    if [[ "$method" != random ]]; then
        cmd+=(--no_aug_training_dataset_inference_exp "$train")
        needed+=(train)
    fi
    # ECLE needs the augmented passes unless the score ignores it (a = 0) or there is no score
    if [[ "$method" == mak ]] && awk -v a="$weight" 'BEGIN { exit !(a + 0 > 0) }'; then
        cmd+=(--aug_sampling_dataset_inference_exp "$aug")
        needed+=(aug)
    fi
    cmd+=(--sampling_method "$method" --sampling_num "$num" --loss_weight "$weight" --core_sample_ratio "$ratio"
          --K_means_num "$clusters" --loss_repeat_time "$LOSS_REPEAT" --seed "$SEED"
          --split_save_dir "$save_dir" --loss_txt_name "$name")
    if (( overwrite )); then cmd+=(--overwrite); fi
    cd "$REPO_ROOT"
    RUN_DIR="$RUNS/$PRETRAIN_NAME"
    if (( ! DRY_RUN )); then
        local kind dir
        for kind in "${needed[@]}"; do
            case "$kind" in pool) dir="$pool" ;; train) dir="$train" ;; aug) dir="$aug" ;; esac
            if [[ ! -f "$RUNS/$dir/meta.json" ]]; then
                die "no inference output $RUNS/$dir; make it with: $(infer_command_hint "$kind")"
            fi
        done
    fi
    run_step "${cmd[@]}"
}
