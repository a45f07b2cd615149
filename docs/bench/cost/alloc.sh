#!/bin/bash
# Bytes the server allocates per turn (docs/benchmarks.md): a seed run of
# 25 s; the Go runtime's TotalAlloc read from /debug/pprof/heap at 8 s and
# 18 s, over the turns answered in those 10 s (the run's rate). With
# PROFILE=1 it also keeps a 10 s CPU profile and the two heap profiles
# (go tool pprof -sample_index=alloc_space -base OUT.heap0 BIN OUT.heap1).
#   docs/bench/cost/alloc.sh bin/parley fake 250 bin/alloc-fake
set -eu
BIN=$1 LLM=$2 CLIENTS=$3 OUT=$4
DEBUG=${DEBUG:-127.0.0.1:6061}
heap() { curl -s "http://$DEBUG/debug/pprof/heap?debug=1" | awk '/# TotalAlloc/ {print $4; exit}'; }
./bin/parley-load seed -llm "$LLM" -slots 1024 -clients "$CLIENTS" -duration 25s -grace 3s \
  -parley "$BIN" -server-env PARLEY_DEBUG_ADDR="$DEBUG" -json "$OUT.json" >"$OUT.txt" 2>&1 &
sleep 8
a0=$(heap)
if [ "${PROFILE:-}" = 1 ]; then
  curl -s -o "$OUT.heap0" "http://$DEBUG/debug/pprof/heap"
  curl -s -o "$OUT.cpu" "http://$DEBUG/debug/pprof/profile?seconds=10"
  curl -s -o "$OUT.heap1" "http://$DEBUG/debug/pprof/heap"
else
  sleep 10
fi
a1=$(heap)
wait
rate=$(jq .turns_per_second "$OUT.json")
echo "$OUT: $(( (a1 - a0) / 10 )) B/s allocated at $rate turns/s: $(awk -v a="$a0" -v b="$a1" -v r="$rate" 'BEGIN {printf "%.0f", (b - a) / 10 / r}') B per turn"
