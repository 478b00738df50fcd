#!/usr/bin/env bash
# SimCLR, SDCLR or BCL (+COLT) on ImageNet-100-LT with ResNet-50, then full-shot and few-shot probing.
#   ./cmds/shell_scrips/imagenet-100-res50-LT_extra.sh --data /path/to/imagenet -g 2 -p 4867 -w 10 \
#       --split imageNet_100_LT_train --save_dir COLT --COLT True --ood_data /path/to/imagenet_r_list.txt
# Lists (relative/path label) in --split_dir (default splits/imagenet100): the LT split, imageNet_100_train
# (full-shot), imageNet_100_train_1pct (few-shot, make it with splits/make_splits.py), imageNet_100_val and
# imageNet_100_test. The OOD pool is an image list (--ood_data, or $OOD_DATA) under --data.
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" per_dataset imagenet100 "$0" "$@"
