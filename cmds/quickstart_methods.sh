#!/usr/bin/env bash
# The COLT paper's Table 1 layout on the embedded synthetic long-tailed dataset, sized for a 2-core CPU:
# SimCLR, SDCLR (pruned branch, dual BatchNorm) and BCL-I (boosted RandAugment), each without and with COLT,
# full-shot and few-shot linear probing of all six, and one report (table and plots).
# The script replaces its own previous outputs under SAVE_DIR, nothing else.
# Environment: PYTHON (default: python), SAVE_DIR (default: runs/quickstart_methods), EPOCHS (default: 10),
# SEED (default: 1; the seed of pre-training and probing).
# Each step's CPU time (user + sys of its processes), wall time and load average go to SAVE_DIR/cpu_times.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

SAVE_DIR="${SAVE_DIR:-runs/quickstart_methods}"
# shellcheck source=cmds/quickstart_settings.sh
source cmds/quickstart_settings.sh

sdclr=(--prune --prune_percent 0.9 --prune_dual_bn)
bcl=(--bcl --rand_k 1)
step pretrain_simclr "$PYTHON" train_simclr.py simclr "${pretrain[@]}"
step pretrain_simclr_colt "$PYTHON" train_simclr.py simclr_colt "${pretrain[@]}" "${colt[@]}"
step pretrain_sdclr "$PYTHON" train_simclr.py sdclr "${pretrain[@]}" "${sdclr[@]}"
step pretrain_sdclr_colt "$PYTHON" train_simclr.py sdclr_colt "${pretrain[@]}" "${sdclr[@]}" "${colt[@]}"
step pretrain_bcl "$PYTHON" train_simclr.py bcl "${pretrain[@]}" "${bcl[@]}"
step pretrain_bcl_colt "$PYTHON" train_simclr.py bcl_colt "${pretrain[@]}" "${bcl[@]}" "${colt[@]}"

for run in simclr simclr_colt sdclr sdclr_colt bcl bcl_colt; do
    case "$run" in
        simclr) method=SimCLR ;;
        simclr_colt) method=SimCLR+COLT ;;
        sdclr) method=SDCLR ;;
        sdclr_colt) method=SDCLR+COLT ;;
        bcl) method=BCL-I ;;
        bcl_colt) method=BCL-I+COLT ;;
    esac
    probe_run "$run" "$method"
done

step report "$PYTHON" report.py "$SAVE_DIR/probes" --out "$SAVE_DIR/report"
echo "quickstart_methods finished in $(( $(date +%s) - start )) s ($(total_cpu) CPU-seconds; per step in" \
     "$TIMES_FILE); outputs in $SAVE_DIR: six pre-training runs, probes/ (results.json), report/ (table.md," \
     "table.csv, per_class.png, groups.png, picks.md, picks.png)"
