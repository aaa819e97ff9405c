#!/bin/bash
# An idle 3-node cluster: CPU of every thread of every server (utime+stime from
# /proc/<pid>/task/*/stat, 10 ms ticks) over DUR seconds (default 60), after the
# start-up settles; then each server's total and the cluster's, in % of one core.
source "$(dirname "${BASH_SOURCE[0]}")/start-cluster.sh"
sleep 3
tick=$(getconf CLK_TCK)
snap() {
  for p in "${pids[@]}"; do
    for t in /proc/$p/task/*; do echo "$p/$(basename "$t") $(awk '{print $14+$15}' "$t/stat")"; done
  done | sort
}
snap > $W/idle-a
sleep ${DUR:-60}
snap > $W/idle-b
join $W/idle-a $W/idle-b | awk -v d=${DUR:-60} -v t=$tick '
  { split($1, a, "/"); c = ($3 - $2) * 100 / t / d; per[a[1]] += c; total += c
    if (a[1] == a[2]) main[a[1]] = c }
  END { for (p in per) printf "server %s %.2f%% of a core (main thread %.2f%%)\n", p, per[p], main[p]
        printf "idle cluster %.2f%% of a core in total over %d s\n", total, d }'
for p in "${pids[@]}"; do kill -INT $p; done
wait
