#!/bin/bash
# 3 serve processes, a bench against them, CPU seconds of every process (utime+stime from /proc) during the bench.
source "$(dirname "${BASH_SOURCE[0]}")/start-cluster.sh"
tick=$(getconf CLK_TCK)
cpu() { awk -v t=$tick '{print ($14+$15)/t}' /proc/$1/stat; }
declare -A before
for p in "${pids[@]}"; do before[$p]=$(cpu $p); done
t0=$(date +%s.%N)
/usr/bin/time -f 'bench user_s %U sys_s %S' -o $W/bench.time node "$ROOT"/dist/src/cli/main.js bench --cluster 127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003 --warmup 0 --duration ${DUR:-8} ${ARGS} --json $W/b.json > $W/bench.out 2>&1 &
bp=$!
wait $bp
t1=$(date +%s.%N)
grep -E "requests/s|commands/s|client " $W/bench.out
for p in "${pids[@]}"; do echo "server $p cpu_s $(echo "$(cpu $p) - ${before[$p]}" | bc)"; done
echo "bench wall_s $(echo "$t1 - $t0" | bc)"
cat $W/bench.time
for p in "${pids[@]}"; do kill -INT $p; done
wait
