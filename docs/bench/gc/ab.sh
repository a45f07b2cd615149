#!/bin/bash
# The GC settings' A/B (docs/benchmarks.md, "Memory and GC"): in each
# round, every arm's run goes at the same time, each with its own Redis,
# server and load generator, so that the drift of a shared machine (other
# jobs on its cores) falls on every arm alike. The servers log each
# collection (GODEBUG=gctrace=1) into OUT/<scenario>-<arm>-<round>.txt
# beside the JSON. Run from the repository root after `make build` and
# `go build -tags nolibopusfile -o bin/parley-load ./cmd/parley-load`:
#   docs/bench/gc/ab.sh
#   ARMS="gc100:PARLEY_GC_PERCENT=100 gc200:PARLEY_GC_PERCENT=200" SCENARIOS="fake idle" docs/bench/gc/ab.sh
set -eu
OUT=${OUT:-bin/bench-gc}
ROUNDS=${ROUNDS:-4}
CLIENTS=${CLIENTS:-100}
# name:KEY=VALUE,KEY=VALUE (each a -server-env of that arm)
read -r -a arms <<<"${ARMS:-gc100:PARLEY_GC_PERCENT=100 gc400:PARLEY_GC_PERCENT=400 gc400lim:PARLEY_GC_PERCENT=400,PARLEY_MEMORY_LIMIT=64MiB}"
mkdir -p "$OUT"
envflags() {
  local IFS=,
  for kv in $1; do printf -- '-server-env %s ' "$kv"; done
  printf -- '-server-env GODEBUG=gctrace=1'
}
for r in $(seq 1 "$ROUNDS"); do
  for sc in ${SCENARIOS:-local fake idle}; do
    case $sc in
      local) args="seed -llm local -slots 1024 -clients $CLIENTS -duration 10s -grace 3s" ;;
      fake) args="seed -llm fake -slots 1024 -clients $CLIENTS -duration 10s -grace 3s" ;;
      idle) args="idle -clients 5000 -duration 6s" ;;
    esac
    for a in "${arms[@]}"; do
      name=${a%%:*}
      # shellcheck disable=SC2046,SC2086 # the words are flags
      ./bin/parley-load $args $(envflags "${a#*:}") -json "$OUT/$sc-$name-$r.json" >"$OUT/$sc-$name-$r.txt" 2>&1 &
    done
    wait
    echo "round $r $sc done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
