#!/usr/bin/env bash
# SimCLR, SDCLR (--prune True) or BCL (--bcl True), each + COLT with --COLT True, on CIFAR-10-LT; then
# full-shot and few-shot linear probing (--help lists every flag; cmds/launch.py builds the commands).
#   ./cmds/shell_scrips/cifar-10-LT_extra.sh -g 1 -p 4867 -w 8 --split split1_D_i --save_dir COLT --COLT True
# Data: --data (or $DATA) holds cifar-10-batches-py/; the OOD pool defaults to <data>/300K_random_images.npy.
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" per_dataset cifar10 "$0" "$@"
