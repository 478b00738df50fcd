#!/usr/bin/env bash
# MAK step 3: choose the extra pool items once, offline, from the inference outputs (sample_mak.py).
#   cmds/shell_scrips/sampling.sh --pretrain_seed 10                 # ImageNet-100-LT, ImageNet-900, 10K
#   cmds/shell_scrips/sampling.sh --pretrain_dataset cifar10 -s split1_D_i --data ~/data   # 300K pool
#   ... --core_sample_ratio 1.0 --loss_weight 0.0    (ablation: proximity alone)
#   ... --sampling_method random                     (offline random K, MAK's "Random" row)
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/../launch.py" sampling imagenet100 "$0" "$@"
