#!/usr/bin/env bash
# SimCLR, SDCLR or BCL (+COLT) on Places-LT with ResNet-50, then full-shot and few-shot probing.
#   ./cmds/shell_scrips/places365-LT_extra.sh --data /path/to/places -g 2 -p 4867 -w 10 \
#       --split Places_LT_train --save_dir COLT --COLT True --ood_data /path/to/places69_list.txt
# Lists (relative/path label) in --split_dir (default splits/places): the LT split, Places_train (full-shot),
# Places_train_1pct (few-shot, make it with splits/make_splits.py), Places_LT_val and Places_LT_test.
# The OOD pool is an image list (--ood_data, or $OOD_DATA) under --data.
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" per_dataset places "$0" "$@"
