#!/usr/bin/env bash
# MAK step 2 on CIFAR-100-LT: as cifar-10-LT-inference.sh, for the runs of cifar-100-LT_extra.sh --save_dir SimCLR:
#   cmds/shell_scrips/cifar-100-LT-inference.sh -s cifar100_split1_D_i --inference_dataset 300K_random_images \
#       --inference_dataset_split ~/data/300K_random_images.npy --inference_repeat_time 1 --inference_noAug True
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" inference cifar100 "$0" "$@"
