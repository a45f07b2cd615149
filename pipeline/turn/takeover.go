package turn

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Each replica keeps its accepted turns in its own job stream,
// P:jobs:{replica}, and its heartbeat in the sorted set P:replicas (score:
// Redis time in ms). A replica whose heartbeat is older than ClaimAfter is
// dead: the first live replica to lock its stream moves the jobs into its
// own stream and runs them. Why per-replica streams rather than one stream
// with a consumer group: the replica that holds the socket runs the turn,
// so the queue bound and busy answer are exact and local, and the streams
// are sharded by replica for free. See docs/design.md.

// heartbeatScript records this replica's beat with Redis' clock (no clock
// skew between replicas) and returns the replicas that stopped beating.
var heartbeatScript = redis.NewScript(lua("heartbeat.lua"))

// dropIfEmptyScript deletes a dead replica's job stream once it is empty.
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

// adopt moves the jobs of replica r into this replica's stream and queues
// them. For r == this replica, it queues the jobs left by a previous
// process with the same id.
func (e *Engine) adopt(ctx context.Context, r string) {
	self := r == e.cfg.ReplicaID
	if !self {
		ok, err := e.rdb.SetNX(ctx, e.adoptKey(r), e.cfg.ReplicaID, e.cfg.ClaimAfter).Result()
		if err != nil || !ok {
			return // another replica is adopting them
		}
		defer e.rdb.Del(context.WithoutCancel(ctx), e.adoptKey(r))
	}
	src := e.jobsKey(r)
	mine := e.jobsKey(e.cfg.ReplicaID)
	start := "-"
	for ctx.Err() == nil {
		msgs, err := e.rdb.XRangeN(ctx, src, start, "+", 256).Result()
		if err != nil {
			e.log.Warn("adopt: read jobs", "from", r, "err", err)
			return
		}
		for _, m := range msgs {
			sid, _ := m.Values["s"].(string)
			turn, _ := strconv.ParseInt(asString(m.Values["t"]), 10, 64)
			if run := asString(m.Values["r"]); turn == 0 && run != "" {
				t, ok, err := e.store.TurnOfRun(ctx, sid, run)
				if err != nil {
					e.log.Warn("adopt: find a job's turn", "from", r, "session", sid, "err", err)
					return
				}
				if !ok { // its turn has its reply, or was never stored
					e.rdb.XDel(ctx, src, m.ID)
					continue
				}
				turn = t
			}
			j := &job{session: sid, turn: turn, entry: m.ID, stream: src, accepted: entryTime(m.ID), adopted: true, opts: jobOptions(m.Values)}
			if !self {
				// Into our stream first, then out of theirs: a crash between
				// leaves two copies, and the turn's run ownership makes the
				// second a no-op.
				id, err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: mine, Values: jobValues(j)}).Result()
				if err != nil {
					e.log.Warn("adopt: move job", "from", r, "err", err)
					return
				}
				e.rdb.XDel(ctx, src, m.ID)
				j.entry, j.stream = id, mine
			}
			e.log.Info("taking over turn", "from", r, "session", sid, "turn", turn)
			adopted.Inc()
			e.mu.Lock()
			e.queue = append(e.queue, j)
			e.mu.Unlock()
			signal(e.wake)
		}
		if len(msgs) < 256 {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	if !self && ctx.Err() == nil {
		if dropped, err := dropIfEmptyScript.Run(ctx, e.rdb, []string{src}).Int(); err == nil && dropped == 1 {
			e.rdb.ZRem(ctx, e.registryKey(), r)
		}
	}
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// entryTime is when a stream entry was added, from its id.
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return time.UnixMilli(n)
}
