#!/usr/bin/env bash
# MAK step 2 on CIFAR-100-LT: as cifar-10-LT-inference.sh, for the runs of cifar-100-LT_extra.sh --save_dir SimCLR:
#   cmds/shell_scrips/cifar-100-LT-inference.sh -s cifar100_split1_D_i --inference_dataset 300K_random_images \
#       --inference_dataset_split ~/data/300K_random_images.npy --inference_repeat_time 1 --inference_noAug True
#   (then --inference_dataset cifar100 --inference_dataset_split cifar100_split1_D_i ... --inference_noAug True,
#   and the pool again with --inference_repeat_time 10)
MAK_SCRIPT_DATASET=cifar100
# shellcheck source=cmds/shell_scrips/mak_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/mak_common.sh"
inference_main "$@"
