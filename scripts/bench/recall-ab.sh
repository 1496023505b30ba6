#!/bin/bash
# Alternates two builds on one loaded SQLite database: each started fresh, warmed 25 s (the
# survivorship cohorts load at start-up), then 20 s of one-client recall with wrk.
# Usage: scripts/bench/recall-ab.sh BUILD_A[:DB_A] BUILD_B[:DB_B] DB TARGETS [ROUNDS] [WRK_ARGS]
# A build given as BUILD:DB runs on its own copy of the database (needed when the two builds
# differ in schema, as across a migration); the others run on DB.
# Needs MDOR_KEYS__KEK and MDOR_TOKEN (a regulator's) in the environment.
set -euo pipefail
a=$1 b=$2 db=$3 targets=$4 rounds=${5:-3} args=${6:--t1 -c1 -d20s}
here=$(cd "$(dirname "$0")/../.." && pwd)
for round in $(seq 1 "$rounds"); do
  for pair in "$a" "$b"; do
    build=${pair%%:*}
    own=$db
    [[ $pair == *:* ]] && own=${pair#*:}
    "$build" --database-url "sqlite://$own" serve --listen 127.0.0.1:8089 > /dev/null 2>&1 &
    pid=$!
    sleep 25
    echo "== $build on $own, round $round"
    # shellcheck disable=SC2086
    MDOR_RECALL_TARGETS=$targets wrk $args --latency -s "$here/benches/http/recall.lua" http://127.0.0.1:8089 \
      | grep -E " 50%| 90%| 99%|p99.9|Requests/sec|non-2xx"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
