#!/usr/bin/env bash
# The quickstart for seeds 1, 2 and 3, each into its own folder (runs/quickstart_seed<k>), then one table
# whose cells are mean ± std over the three seeds, so that a method's effect can be told from noise.
# About three quickstarts' time (roughly 25 minutes or more on a loaded 2-core CPU).
# Environment: PYTHON (default: python), EPOCHS (default: 10), SEEDS (default: "1 2 3").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
SEEDS="${SEEDS:-1 2 3}"
start=$(date +%s)
probes=()
for seed in $SEEDS; do
    SEED="$seed" SAVE_DIR="runs/quickstart_seed$seed" PYTHON="$PYTHON" bash cmds/quickstart.sh
    probes+=("runs/quickstart_seed$seed/probes")
done
# report.py averages every results.json of a method: here one per seed ("splits" in its pictures = seeds)
"$PYTHON" report.py "${probes[@]}" --out runs/quickstart_seeds/report
echo "seeds $SEEDS finished in $(( $(date +%s) - start )) s; each cell above is mean ± std over the seeds;" \
     "table and plots in runs/quickstart_seeds/report"
