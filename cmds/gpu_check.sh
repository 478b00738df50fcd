#!/usr/bin/env bash
# GPU acceptance check in one command: every CUDA path of the project, in under 8 minutes on one GPU.
#
#   bash cmds/gpu_check.sh                # one CUDA machine; report in $OUT (default runs/gpu_check)
#   bash cmds/gpu_check.sh -g 4           # stage 4 across 4 GPUs with NCCL
#   bash cmds/gpu_check.sh --dry_run      # every stage with its commands and time limit; runs nothing
#   bash cmds/gpu_check.sh --cpu_smoke    # stages 0-4 on the CPU at tiny sizes (CI)
#
# The stages, their limits and the report are described in cmds/gpu_check.py (--help). Each stage has a
# hard time limit inside an overall budget; this wrapper adds a last one over the whole run
# (GPU_CHECK_TIMEOUT seconds, default 570, 780 with --cpu_smoke): the report is rewritten after every
# stage, so even then the stages done so far are in it. Python: $PYTHON, else python3 (no virtual
# environment needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
limit=570
for arg in "$@"; do
    if [ "$arg" = "--cpu_smoke" ]; then limit=780; fi
done
if command -v timeout > /dev/null; then
    exec timeout --kill-after=15 "${GPU_CHECK_TIMEOUT:-$limit}" "$PYTHON" cmds/gpu_check.py "$@"
fi
exec "$PYTHON" cmds/gpu_check.py "$@"  # no coreutils timeout: the stages' own limits still hold
