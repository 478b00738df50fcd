#!/usr/bin/env bash
# MAK steps 1 and 4 on ImageNet-100-LT (ResNet-50): SimCLR pre-training alone, or with the pool items that
# sampling.sh chose, then full-shot and few-shot probing. The MAK README's commands:
#   cmds/shell_scrips/imagenet-100-add-data.sh -g 2 -p 4866 -w 10 --seed 10 --additional_dataset None
#   cmds/shell_scrips/imagenet-100-add-data.sh -g 2 -p 4866 -w 10 --seed 10 --additional_dataset imagenet-900 \
#       --additional_split MAK/optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10 \
#       --additional_split_name optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" add_data imagenet100 "$0" "$@"
