#!/bin/bash
# 3 serve processes (kv), raftline bench for DUR seconds at the given ARGS; RSS of every server every 10 s.
source "$(dirname "${BASH_SOURCE[0]}")/start-cluster.sh"
node "$ROOT"/dist/src/cli/main.js bench --cluster 127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003 --warmup 0 --duration ${DUR:-180} ${ARGS} --json $W/rss-bench.json > $W/rss-bench.out 2>&1 &
bp=$!
t0=$(date +%s)
while kill -0 $bp 2>/dev/null; do
  line="t=$(( $(date +%s) - t0 ))s"
  for p in "${pids[@]}"; do line="$line $(awk '/VmRSS/{printf "%d", $2/1024}' /proc/$p/status)MB"; done
  echo "$line"
  sleep 10
done
grep -E "requests/s|commands/s|client " $W/rss-bench.out
node "$ROOT"/dist/src/cli/main.js status --cluster 127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003 2>&1 | head -4
for p in "${pids[@]}"; do kill -INT $p; done
wait
