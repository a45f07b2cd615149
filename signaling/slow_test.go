package signaling_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/pipeline"
	"github.com/parleyhq/parley/signaling"
)

// bigLLM streams many large sentences, to fill a socket that is not read.
type bigLLM struct{}

func (bigLLM) MaxBatch() int { return 1 }

func (bigLLM) Stream(ctx context.Context, convs [][]pipeline.Message, emit func(int, string)) error {
	sentence := strings.Repeat("word ", 6000) + "end. "
	for i := 0; i < 400 && ctx.Err() == nil; i++ {
		emit(0, sentence)
	}
	return ctx.Err()
}

// A client that stops reading is disconnected as slow_client, not waited
// for; it resumes and gets everything.
func TestSlowClientIsDisconnectedAndLosesNothing(t *testing.T) {
	r := startReplica(t, newRedis(t), bigLLM{}, replicaOpts{
		ws:     signaling.Config{SendQueue: 4, WriteTimeout: 2 * time.Second},
		engine: pipeline.Config{Coalesce: time.Hour},
	})
	c := dial(t, r.URL)
	c.hello()
	c.send(map[string]any{"type": "text", "text": "flood me"})
	before := disconnectsFor(t, "slow_client")
	time.Sleep(500 * time.Millisecond) // not reading: the server's queue fills
	var err error
	for err == nil { // the socket ends; its close frame may not fit in the full buffers
		_, err = c.read(10 * time.Second)
	}
	if got := disconnectsFor(t, "slow_client"); got != before+1 {
		t.Fatalf("slow_client disconnects went from %v to %v, want one more (client saw %v)", before, got, err)
	}

	c2 := dial(t, r.URL)
	if ev := c2.resume(c.session, c.token, c.lastID); ev.Type != "session" {
		t.Fatalf("resume: %s", ev.raw)
	}
	evs := c2.until("reply.done", 1)
	if got := len(evs[len(evs)-1].Text); got != 400*len(strings.Repeat("word ", 6000)+"end. ") {
		t.Fatalf("reply.done has %d bytes after resume", got)
	}
}

// disconnectsFor reads parley_ws_disconnects_total{reason} from the
// process's metrics.
func disconnectsFor(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "parley_ws_disconnects_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
