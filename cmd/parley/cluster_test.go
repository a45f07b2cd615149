package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/session"
)

// Parley on a real three-node Redis Cluster, two replica processes:
// sessions' keys spread over the nodes; each session's events, appended
// on one replica, are replayed on the other once and in order; the rate
// limiter and the job streams work; a replica killed mid-reply has its
// turn taken over by the other.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	model, story := slowModel(t, 10)
	// A takeover after 1 s, not 15, to keep the test short; a turn rate the
	// replay checks do not hit.
	env := []string{"REDIS_URL=" + cl.URL(), "PARLEY_REDIS_CLUSTER=true", "LLM_BASE_URL=" + model, "LLM_MODEL=m",
		"PARLEY_CLAIM_AFTER=1s", "PARLEY_RATE_SESSION=10"}
	a := startProc(t, append(env, "PARLEY_REPLICA_ID=a")...)
	b := startProc(t, append(env, "PARLEY_REPLICA_ID=b")...)

	type sess struct{ id, token, last string }
	const n = 12
	sessions := make([]sess, n)
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Add(1)
		go func() { // one session's turn on a; ends at its reply.done
			defer wg.Done()
			c := dialWS(t, a.addr)
			c.Send(map[string]any{"type": "hello"})
			s := c.NextWithin(10 * time.Second)
			c.Send(map[string]any{"type": "text", "text": fmt.Sprintf("story %d", i)})
			for {
				ev := c.NextWithin(20 * time.Second)
				if ev.Type == "error" {
					t.Errorf("session %d: %+v", i, ev)
					return
				}
				if ev.Type == "reply.done" {
					if ev.Text != story {
						t.Errorf("session %d: %q", i, ev.Text)
					}
					break
				}
			}
			sessions[i] = sess{s.Session, s.Token, c.LastID}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The sessions' keys are spread over the nodes. Not "every node holds
	// some": 12 random sessions leave one of three nodes without any about
	// once in 40 runs (the jobs' keys, which might have been there, go
	// when their last job does); all on one node, once in 180,000.
	cc := cl.Client()
	var mu sync.Mutex
	holding := 0
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			return fmt.Errorf("node %s: %v", c.Options().Addr, err)
		}
		if n > 0 {
			mu.Lock()
			holding++
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if holding < 2 {
		t.Fatalf("the sessions' keys are on %d of the 3 nodes", holding)
	}

	// Replayed on b from the start: transcript, the deltas, reply.done.
	for i, s := range sessions {
		c := dialWS(t, b.addr)
		c.Send(map[string]any{"type": "hello", "session": s.id, "token": s.token, "last_event": "0"})
		if ev := c.NextWithin(10 * time.Second); ev.Type != "session" || !ev.Resumed {
			t.Fatalf("session %d resume: %+v", i, ev)
		}
		prev, text := "", ""
		for {
			ev := c.NextWithin(10 * time.Second)
			if session.CompareIDs(ev.ID, prev) <= 0 {
				t.Fatalf("session %d: event %s after %s", i, ev.ID, prev)
			}
			prev = ev.ID
			if ev.Type == "reply.delta" {
				text += ev.Text
			}
			if ev.Type == "reply.done" {
				break
			}
		}
		if text != story || prev != s.last {
			t.Fatalf("session %d replayed %q up to %s, want the story up to %s", i, text, prev, s.last)
		}
	}

	// Live across replicas: a socket on b follows a session whose turn
	// runs on a; the events come over sharded Pub/Sub, none over the
	// cluster bus.
	bus := cl.BusPublishes()
	live := dialWS(t, b.addr)
	s0 := sessions[0]
	live.Send(map[string]any{"type": "hello", "session": s0.id, "token": s0.token, "last_event": s0.last})
	if ev := live.NextWithin(10 * time.Second); ev.Type != "session" {
		t.Fatalf("resume on b: %+v", ev)
	}
	ca := dialWS(t, a.addr)
	ca.Send(map[string]any{"type": "hello", "session": s0.id, "token": s0.token, "last_event": s0.last})
	ca.NextWithin(10 * time.Second)
	ca.Send(map[string]any{"type": "text", "text": "live"})
	for ev := live.NextWithin(20 * time.Second); ev.Type != "reply.done"; ev = live.NextWithin(20 * time.Second) {
		if ev.Type == "error" {
			t.Fatalf("live on b: %+v", ev)
		}
	}
	if d := cl.BusPublishes() - bus; d != 0 {
		t.Fatalf("%d Pub/Sub messages crossed the cluster bus", d)
	}

	// A turn in flight on a when a is killed: b answers it.
	c := dialWS(t, a.addr)
	c.Send(map[string]any{"type": "hello"})
	s := c.NextWithin(10 * time.Second)
	c.Send(map[string]any{"type": "text", "text": "one more"})
	for ev := c.NextWithin(10 * time.Second); ev.Type != "reply.delta"; ev = c.NextWithin(10 * time.Second) {
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
	c2 := dialWS(t, b.addr)
	c2.Send(map[string]any{"type": "hello", "session": s.Session, "token": s.Token, "last_event": c.LastID})
	c2.NextWithin(10 * time.Second)
	for {
		ev := c2.NextWithin(30 * time.Second)
		if ev.Type == "error" {
			t.Fatalf("%+v", ev)
		}
		if ev.Type == "reply.done" {
			if ev.Text != story {
				t.Fatalf("taken over: %q", ev.Text)
			}
			break
		}
	}
}
