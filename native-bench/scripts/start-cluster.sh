#!/bin/bash
# Sourced by cluster-cpu.sh, cluster-rss.sh and cluster-idle.sh: starts three `raftline serve` processes (kv) on
# 127.0.0.1:27001-27003 with data under $W, their pids in `pids`, and waits for them to elect.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
W=${W:-/tmp/raftline-cluster-bench}; rm -rf $W; mkdir -p $W; cd $W
PEERS=n1=127.0.0.1:27001,n2=127.0.0.1:27002,n3=127.0.0.1:27003
pids=()
for i in 1 2 3; do
  node "$ROOT"/dist/src/cli/main.js serve --id n$i --listen 127.0.0.1:2700$i --peers $PEERS --data-dir $W/d$i --fsm kv --log-level warn > $W/n$i.log 2>&1 &
  pids+=($!)
done
sleep 3
