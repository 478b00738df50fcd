#!/usr/bin/env bash
# SimCLR (+COLT with --COLT True) on CIFAR-100-LT, then full-shot and few-shot linear probing.
#   ./cmds/shell_scrips/cifar-100-LT_extra.sh -g 1 -p 4867 -w 8 --split cifar100_split1_D_i --save_dir COLT --COLT True
# Data: --data (or $DATA) holds cifar-100-python/; the OOD pool defaults to <data>/300K_random_images.npy.
D_DATASET=cifar100 D_MODEL=res18 D_EPOCHS=2000 D_BATCH=512 D_LR=0.5 D_SUP_WEIGHT=0.2
D_SAMPLE_SET=300K_random_images D_OOD_DEFAULT=300K_random_images.npy D_SPLIT=cifar100_split1_D_i D_SPLIT_EXT=.npy
D_FULL_SPLIT=cifar100_trainIdxList D_VAL_SPLIT=cifar100_valIdxList D_TEST_SPLIT="" D_FEWSHOT_SPLIT=""
# shellcheck source=cmds/shell_scrips/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
main "$@"
