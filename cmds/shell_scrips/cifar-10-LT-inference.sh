#!/usr/bin/env bash
# MAK step 2 on CIFAR-10-LT: features of the 300K Random Images pool and of the long-tailed split from the
# run of cifar-10-LT_extra.sh --save_dir SimCLR (ResNet-18), e.g. for split1_D_i:
#   cmds/shell_scrips/cifar-10-LT-inference.sh -s split1_D_i --inference_dataset 300K_random_images \
#       --inference_dataset_split ~/data/300K_random_images.npy --inference_repeat_time 1 --inference_noAug True
#   (then --inference_dataset cifar10 --inference_dataset_split split1_D_i ... --inference_noAug True,
#   and the pool again with --inference_repeat_time 10)
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" inference cifar10 "$0" "$@"
