package parley_test

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/turn"
)

// Events appended by one replica reach, live, a socket of the same session
// held by another replica.
func TestLiveDeliveryAcrossReplicas(t *testing.T) {
	rdb := newRedis(t)
	llm := newGateLLM()
	r1 := startReplica(t, rdb, llm, replicaOpts{})
	r2 := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{})

	writer := dial(t, r1.URL)
	writer.Hello()
	watcher := dial(t, r2.URL)
	if ev := watcher.Resume(writer.Session, writer.Token, ""); ev.Type != "session" {
		t.Fatalf("second socket: %s", ev.Raw)
	}
	writer.Send(map[string]any{"type": "text", "text": "tell both"})
	<-llm.started // replica 1 runs the turn
	if ev := watcher.Next(); ev.Type != "transcript" || ev.Text != "tell both" {
		t.Fatalf("watcher: %s", ev.Raw)
	}
	for _, p := range []string{"One. ", "Two. ", "Three."} {
		llm.gate <- p
		if ev := watcher.Next(); ev.Type != "reply.delta" || ev.Text != p {
			t.Fatalf("watcher on replica 2 got %s, want the delta %q live", ev.Raw, p)
		}
	}
	close(llm.gate)
	if ev := watcher.Next(); ev.Type != "reply.done" || ev.Text != "One. Two. Three." {
		t.Fatalf("watcher: %s", ev.Raw)
	}
}

// A queued turn that waits past the queue's deadline gets busy, with its
// turn number, while the slot stays taken.
func TestQueuedTurnTimesOutWithBusy(t *testing.T) {
	llm := newGateLLM()
	r := startReplica(t, newRedis(t), llm, replicaOpts{engine: turn.Config{Slots: 1, Queue: 10, QueueWait: 200 * time.Millisecond}})
	c := dial(t, r.URL)
	c.Hello()
	for _, s := range []string{"one", "two", "three"} {
		c.Send(map[string]any{"type": "text", "text": s})
	}
	<-llm.started
	busy := map[int64]bool{}
	for len(busy) < 2 {
		ev := c.Next()
		if ev.Type == "error" {
			if ev.Code != "busy" || ev.Turn < 2 {
				t.Fatalf("want busy for a queued turn, got %s", ev.Raw)
			}
			busy[ev.Turn] = true
		}
	}
	close(llm.gate)
	evs := c.Until("reply.done", 1)
	if evs[len(evs)-1].Text != "" {
		t.Fatalf("turn 1: %s", evs[len(evs)-1].Raw)
	}
}
