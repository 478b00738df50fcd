#!/usr/bin/env bash
# SimCLR, SDCLR (--prune True) or BCL (--bcl True), each + COLT with --COLT True, on CIFAR-100-LT; then
# full-shot and few-shot linear probing (--help lists every flag; cmds/launch.py builds the commands).
#   ./cmds/shell_scrips/cifar-100-LT_extra.sh -g 1 -p 4867 -w 8 --split cifar100_split1_D_i --save_dir COLT --COLT True
# Data: --data (or $DATA) holds cifar-100-python/; the OOD pool defaults to <data>/300K_random_images.npy.
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" per_dataset cifar100 "$0" "$@"
