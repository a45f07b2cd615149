package parley_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
)

// bigLLM streams many large sentences, to fill a socket that is not read.
type bigLLM struct{}

func (bigLLM) MaxBatch() int { return 1 }

// CallsTools implements llm.LLM: this fake calls none.
func (bigLLM) CallsTools() bool { return false }

func (bigLLM) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	sentence := strings.Repeat("word ", 6000) + "end. "
	for i := 0; i < 400 && ctx.Err() == nil; i++ {
		emit(0, llm.Piece{Text: sentence})
	}
	return ctx.Err()
}

// A client that stops reading is disconnected as slow_client, not waited
// for; it resumes and gets everything.
func TestSlowClientIsDisconnectedAndLosesNothing(t *testing.T) {
	rdb := newRedis(t)
	r := startReplica(t, rdb, bigLLM{}, replicaOpts{
		ws:     signaling.Config{SendQueue: 4, WriteTimeout: 2 * time.Second},
		engine: turn.Config{Coalesce: time.Nanosecond}, // every piece its own frame
	})
	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "flood me"})
	before := metricValue(t, "parley_ws_disconnects_total", "reason", "slow_client")
	replied := metricValue(t, "parley_turns_total", "outcome", "replied")
	time.Sleep(500 * time.Millisecond) // not reading: the server's queue fills
	var err error
	for err == nil { // the socket ends; its close frame may not fit in the full buffers
		_, err = c.Read(30 * time.Second)
	}
	// The server counts the disconnect once its side has wound down, a
	// moment after the client sees the socket end.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := metricValue(t, "parley_ws_disconnects_total", "reason", "slow_client")
		if got == before+1 {
			break
		}
		if got > before+1 || time.Now().After(deadline) {
			t.Fatalf("slow_client disconnects went from %v to %v, want one more (client saw %v)", before, got, err)
		}
	}

	// Resume once the reply is complete: a resuming client reads it all
	// from the log, without the live queue.
	for deadline := time.Now().Add(20 * time.Second); metricValue(t, "parley_turns_total", "outcome", "replied") < replied+1; {
		if time.Now().After(deadline) {
			t.Fatal("the reply never completed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// On another replica, with the default write timeout: the replay is
	// 24 MB, more than this test's reader may take in 2 s on a loaded
	// machine (it would be a slow client too).
	r2 := startReplica(t, rdb, bigLLM{}, replicaOpts{})
	c2 := dial(t, r2.URL)
	if ev := c2.Resume(c.Session, c.Token, c.LastID); ev.Type != "session" {
		t.Fatalf("resume: %s", ev.Raw)
	}
	evs := c2.Until("reply.done", 1)
	if got := len(evs[len(evs)-1].Text); got != 400*len(strings.Repeat("word ", 6000)+"end. ") {
		t.Fatalf("reply.done has %d bytes after resume", got)
	}
}

// metricValue reads a counter of this process's metrics by one label.
func metricValue(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
