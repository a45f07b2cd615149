#!/bin/sh
# The capacity model's check at small scale (docs/scaling.md): a three-node
# Redis Cluster on loopback, two Parley replicas on it, a load generator on
# each replica; prints each node's share of the commands and the totals
# per turn. Run from the repository root after `make build` and
# `go build -tags nolibopusfile -o bin/parley-load ./cmd/parley-load`.
set -eu
CLIENTS=${CLIENTS:-150}
DURATION=${DURATION:-15s}
dir=$(mktemp -d)
trap 'kill $pids $rpids 2>/dev/null; rm -rf "$dir"' EXIT
pids=""; rpids=""
# A free port whose cluster bus port (+10000) is free too.
port() { python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 30000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'; }
nodes=""
for i in 1 2 3; do
  p=$(port)
  mkdir -p "$dir/$p"
  (cd "$dir/$p" && exec redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --save "" --appendonly no --loglevel warning >/dev/null) &
  rpids="$rpids $!"
  nodes="$nodes 127.0.0.1:$p"
done
sleep 1
timeout 30 redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes >/dev/null
set -- $nodes
url="redis://$1?addr=$2&addr=$3"
csv=$(echo $nodes | tr ' ' ',')
until redis-cli -u "redis://$1" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
urls=""
for r in a b; do
  p=$(port)
  REDIS_URL=$url PARLEY_REDIS_CLUSTER=true PARLEY_REPLICA_ID=$r PARLEY_RATE_SESSION=0 PARLEY_ASR=off \
    PARLEY_LLM_SLOTS=1024 PARLEY_LLM_QUEUE=256 PARLEY_ADDR=127.0.0.1:$p ./bin/parley 2>"$dir/$r.log" &
  pids="$pids $!"; urls="$urls ws://127.0.0.1:$p/ws"
done
sleep 2
for n in $nodes; do redis-cli -u "redis://$n" config resetstat >/dev/null; done
i=0; loads=""
for u in $urls; do
  i=$((i+1))
  ./bin/parley-load text -url "$u" -clients "$CLIENTS" -duration "$DURATION" -grace 5s -json "$dir/load$i.json" >"$dir/load$i.txt" 2>&1 &
  loads="$loads $!"
done
wait $loads
sleep 1
cat "$dir"/load*.txt | grep -E "answered|p99|reply.done"
for n in $nodes; do
  echo "node $n: $(redis-cli -u "redis://$n" info stats | grep -E 'total_commands_processed|total_net_input_bytes' | tr -d '\r' | tr '\n' ' ') keys $(redis-cli -u "redis://$n" dbsize)"
  redis-cli -u "redis://$n" cluster info | grep -E 'messages_publish' | tr -d '\r'
done
