#!/bin/bash
# Opens a recall case for the whole model $1 on a server at 127.0.0.1:8089 with the regulator
# token in $TOK; fails unless the server answers 201. Used by docs/benchmarks.md.
set -euo pipefail
reference="BENCH-$(date +%s%N)"
body="{\"reference\":\"$reference\",\"title\":\"bench\",\"reason\":\"bench\",\"udi_dis\":[\"$1\"]}"
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:8089/api/v1/recall-cases \
  -H "authorization: Bearer $TOK" -H 'content-type: application/json' -d "$body")
[ "$status" = 201 ]
