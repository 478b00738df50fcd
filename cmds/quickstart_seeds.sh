#!/usr/bin/env bash
# The quickstart for several seeds (default 1-5), each into its own folder (runs/quickstart_seed<k>), then one
# report whose cells are mean ± std over the seeds, so that a method's effect can be told from noise (its
# picks.md averages each sampler's picks over the seeds too). Costs one quickstart's CPU time per seed (each
# writes its own cpu_times.tsv). cmds/readme_tables.py does the same and writes the README's results block.
# Environment: PYTHON (default: python), EPOCHS (default: 10), SEEDS (default: "1 2 3 4 5").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
SEEDS="${SEEDS:-1 2 3 4 5}"
start=$(date +%s)
probes=()
randoms=()
for seed in $SEEDS; do
    SEED="$seed" SAVE_DIR="runs/quickstart_seed$seed" PYTHON="$PYTHON" bash cmds/quickstart.sh
    probes+=("runs/quickstart_seed$seed/probes")
    randoms+=("runs/quickstart_seed$seed/mak_split/random.json")
done
# report.py averages every results.json of a method: here one per seed ("splits" in its pictures = seeds)
"$PYTHON" report.py "${probes[@]}" --out runs/quickstart_seeds/report --selections "${randoms[@]}"
echo "seeds $SEEDS finished in $(( $(date +%s) - start )) s; each cell above is mean ± std over the seeds;" \
     "table and plots in runs/quickstart_seeds/report"
