#!/bin/bash
# Alternates two builds on one loaded SQLite database: each started fresh, warmed 25 s (the
# survivorship cohorts load at start-up), then 20 s of one-client recall with wrk.
# Usage: scripts/bench/recall-ab.sh BUILD_A BUILD_B DB TARGETS [ROUNDS] [WRK_ARGS]
# Needs MDOR_KEYS__KEK and MDOR_TOKEN (a regulator's) in the environment.
set -euo pipefail
a=$1 b=$2 db=$3 targets=$4 rounds=${5:-3} args=${6:--t1 -c1 -d20s}
here=$(cd "$(dirname "$0")/../.." && pwd)
for round in $(seq 1 "$rounds"); do
  for build in "$a" "$b"; do
    "$build" --database-url "sqlite://$db" serve --listen 127.0.0.1:8089 > /dev/null 2>&1 &
    pid=$!
    sleep 25
    echo "== $build round $round"
    # shellcheck disable=SC2086
    MDOR_RECALL_TARGETS=$targets wrk $args --latency -s "$here/benches/http/recall.lua" http://127.0.0.1:8089 \
      | grep -E " 50%| 90%| 99%|p99.9|Requests/sec|non-2xx"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
