package turn

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Each replica keeps its accepted turns in its own job hash,
// P:jobq:{replica} (jobstore.go), and its heartbeat in the sorted set
// P:replicas (score: Redis time in ms). A replica whose heartbeat is older
// than ClaimAfter is dead: the first live replica to lock its jobs moves
// them into its own hash and runs them. Why per-replica keys rather than
// one stream with a consumer group: the replica that holds the socket
// runs the turn, so the queue bound and busy answer are exact and local,
// and the keys are sharded by replica for free. See docs/design.md.

// heartbeatScript records this replica's beat with Redis' clock (no clock
// skew between replicas) and returns the replicas that stopped beating.
var heartbeatScript = redis.NewScript(lua("heartbeat.lua"))

// dropIfEmptyScript deletes a job stream of a replica from before the hash
// once it is empty (a hash goes by itself).
var dropIfEmptyScript = redis.NewScript(lua("drop_if_empty.lua"))

func (e *Engine) heartbeat(ctx context.Context) ([]string, error) {
	return heartbeatScript.Run(ctx, e.rdb, []string{e.registryKey()}, e.cfg.ReplicaID, e.cfg.ClaimAfter.Milliseconds()).StringSlice()
}

// keepAlive beats three times per ClaimAfter and adopts the jobs of dead
// replicas. It returns when ctx ends.
func (e *Engine) keepAlive(ctx context.Context) {
	ticks, stop := e.clk.NewTicker(e.cfg.ClaimAfter / 3)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if e.handedOver.Load() {
			return
		}
		dead, err := e.heartbeat(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("heartbeat failed", "err", err)
			}
			continue
		}
		for _, r := range dead {
			if r != e.cfg.ReplicaID {
				e.adopt(ctx, r)
			}
		}
	}
}

// adopt moves the jobs of replica r into this replica's hash and queues
// them (jobstore.go). For r == this replica, it queues the jobs left by a
// previous process with the same id.
func (e *Engine) adopt(ctx context.Context, r string) {
	self := r == e.cfg.ReplicaID
	if !self {
		ok, err := e.rdb.SetNX(ctx, e.adoptKey(r), e.cfg.ReplicaID, e.cfg.ClaimAfter).Result()
		if err != nil || !ok {
			return // another replica is adopting them
		}
		defer e.rdb.Del(context.WithoutCancel(ctx), e.adoptKey(r))
	}
	if !e.adoptStream(ctx, r) || !e.adoptHash(ctx, r) {
		return
	}
	if n, err := e.rdb.Exists(ctx, e.jobsKey(r), e.legacyJobsKey(r)).Result(); !self && err == nil && n == 0 {
		e.rdb.ZRem(ctx, e.registryKey(), r)
	}
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
