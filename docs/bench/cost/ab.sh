#!/bin/bash
# A/B of server binaries (docs/benchmarks.md, "A turn's cost (issue 15),
# A/B"): in each round every arm's run goes at the same time, each with
# its own Redis, server and load generator, so that the drift of a shared
# machine falls on every arm alike. Build the binaries first, e.g. one per
# commit with `git worktree`, and parley-load with
# `go build -tags nolibopusfile -o bin/parley-load ./cmd/parley-load`:
#   ARMS="before:bin/parley-before after:bin/parley" docs/bench/cost/ab.sh
set -eu
OUT=${OUT:-bin/bench-cost}
ROUNDS=${ROUNDS:-4}
CLIENTS=${CLIENTS:-100}
read -r -a arms <<<"${ARMS:?name:binary ...}"
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for sc in ${SCENARIOS:-local fake}; do
    for a in "${arms[@]}"; do
      name=${a%%:*}
      ./bin/parley-load seed -llm "$sc" -slots 1024 -clients "$CLIENTS" -duration 10s -grace 3s \
        -parley "${a#*:}" -json "$OUT/$sc-$name-$r.json" >"$OUT/$sc-$name-$r.txt" 2>&1 &
    done
    wait
    echo "round $r $sc done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
