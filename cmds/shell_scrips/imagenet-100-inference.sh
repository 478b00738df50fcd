#!/usr/bin/env bash
# MAK step 2 on ImageNet-100-LT: features of the pool (ImageNet-900) and of the long-tailed set from the
# pre-training run of imagenet-100-add-data.sh. The MAK README's commands:
#   cmds/shell_scrips/imagenet-100-inference.sh -p 5555 --workers 10 --pretrain_seed 10 --epochs 1000 \
#       --batch_size 256 --inference_dataset imagenet-900 --inference_dataset_split ImageNet_900_train \
#       --inference_repeat_time 1 --inference_noAug True
#   ... --inference_dataset imagenet-100 --inference_dataset_split imageNet_100_LT_train --inference_repeat_time 1 --inference_noAug True
#   ... --inference_dataset imagenet-900 --inference_dataset_split ImageNet_900_train --inference_repeat_time 10
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" inference imagenet100 "$0" "$@"
