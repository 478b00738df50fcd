#!/usr/bin/env bash
# SimCLR (+COLT with --COLT True) on ImageNet-100-LT with ResNet-50, then full-shot and few-shot probing.
#   ./cmds/shell_scrips/imagenet-100-res50-LT_extra.sh --data /path/to/imagenet -g 2 -p 4867 -w 10 \
#       --split imageNet_100_LT_train --save_dir COLT --COLT True --ood_data /path/to/imagenet_r_list.txt
# Lists (relative/path label) in --split_dir (default splits/imagenet100): the LT split, imageNet_100_train
# (full-shot), imageNet_100_train_1pct (few-shot, make it with splits/make_splits.py), imageNet_100_val and
# imageNet_100_test. The OOD pool is an image list (--ood_data, or $OOD_DATA) under --data.
D_DATASET=imagenet100 D_MODEL=res50 D_EPOCHS=500 D_BATCH=256 D_LR=0.5 D_SUP_WEIGHT=0.01
D_SAMPLE_SET=image_list D_OOD_DEFAULT="" D_SPLIT=imageNet_100_LT_train D_SPLIT_EXT=.txt
D_FULL_SPLIT=imageNet_100_train D_VAL_SPLIT=imageNet_100_val D_TEST_SPLIT=imageNet_100_test
D_FEWSHOT_SPLIT=imageNet_100_train_1pct
# shellcheck source=cmds/shell_scrips/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
main "$@"
