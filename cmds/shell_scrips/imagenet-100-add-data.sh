#!/usr/bin/env bash
# MAK steps 1 and 4 on ImageNet-100-LT (ResNet-50): SimCLR pre-training alone, or with the pool items that
# sampling.sh chose, then full-shot and few-shot probing. The MAK README's commands:
#   cmds/shell_scrips/imagenet-100-add-data.sh -g 2 -p 4866 -w 10 --seed 10 --additional_dataset None
#   cmds/shell_scrips/imagenet-100-add-data.sh -g 2 -p 4866 -w 10 --seed 10 --additional_dataset imagenet-900 \
#       --additional_split MAK/optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10 \
#       --additional_split_name optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10
# Lists (relative/path label, under --data) in --split_dir (default splits/imagenet100), as for
# imagenet-100-res50-LT_extra.sh; the chosen items in --pool_split_dir/MAK (default splits/imagenet900/MAK).
MAK_SCRIPT_DATASET=imagenet-100
# shellcheck source=cmds/shell_scrips/mak_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/mak_common.sh"
add_data_main "$@"
