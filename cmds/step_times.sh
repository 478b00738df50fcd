# shellcheck shell=bash
# Sourced by the quickstarts: `step NAME COMMAND...` runs a command and appends its CPU seconds (user + sys of
# the processes it ran), wall seconds and the 1-minute load average to $TIMES_FILE (a TSV with a header).
# CPU seconds are what a step costs whatever else runs; wall time depends on the load beside it.

step_times_start() {  # step_times_start FILE: (re)start the table
    TIMES_FILE=$1
    printf 'step\tcpu_s\twall_s\tload_avg_1min\n' > "$TIMES_FILE"
}

# CHILDREN_CPU = user + sys seconds of every finished child of this shell so far (bash's `times`, second
# line). `times` runs in this shell, never in a pipe or $(...), where it would see a fresh subshell's zeros.
children_cpu() {
    times > "$TIMES_FILE.times"  # line 2, e.g. "1m2.500s 0m3.250s"
    CHILDREN_CPU=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2])
                                                                    s += p[1] * 60 + p[2] }; printf "%.1f", s }' \
                   "$TIMES_FILE.times")
    rm -f "$TIMES_FILE.times"
}

step() {
    local name=$1 cpu0 wall0
    shift
    children_cpu
    cpu0=$CHILDREN_CPU
    wall0=$(date +%s.%N)
    "$@"
    children_cpu
    awk -v n="$name" -v c0="$cpu0" -v c1="$CHILDREN_CPU" -v w0="$wall0" -v w1="$(date +%s.%N)" \
        -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { printf "%s\t%.1f\t%.1f\t%s\n", n, c1 - c0, w1 - w0, load }' \
        >> "$TIMES_FILE"
}

total_cpu() {  # the table's CPU seconds, summed
    awk -F'\t' 'NR > 1 { s += $2 } END { printf "%.0f", s }' "$TIMES_FILE"
}
