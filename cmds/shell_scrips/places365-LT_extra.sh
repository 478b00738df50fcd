#!/usr/bin/env bash
# SimCLR (+COLT with --COLT True) on Places-LT with ResNet-50, then full-shot and few-shot probing.
#   ./cmds/shell_scrips/places365-LT_extra.sh --data /path/to/places -g 2 -p 4867 -w 10 \
#       --split Places_LT_train --save_dir COLT --COLT True --ood_data /path/to/places69_list.txt
# Lists (relative/path label) in --split_dir (default splits/places): the LT split, Places_train (full-shot),
# Places_train_1pct (few-shot, make it with splits/make_splits.py), Places_LT_val and Places_LT_test.
# The OOD pool is an image list (--ood_data, or $OOD_DATA) under --data.
D_DATASET=places D_MODEL=res50 D_EPOCHS=500 D_BATCH=256 D_LR=0.5 D_SUP_WEIGHT=0.01
D_SAMPLE_SET=image_list D_OOD_DEFAULT="" D_SPLIT=Places_LT_train D_SPLIT_EXT=.txt
D_FULL_SPLIT=Places_train D_VAL_SPLIT=Places_LT_val D_TEST_SPLIT=Places_LT_test D_FEWSHOT_SPLIT=Places_train_1pct
# shellcheck source=cmds/shell_scrips/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
main "$@"
