package parley_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/turn"
)

func TestTextRoundTrip(t *testing.T) {
	rdb := newRedis(t)
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{})
	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "good morning to you"})

	evs := c.Until("reply.done", 1)
	if evs[0].Type != "transcript" || !evs[0].Final || evs[0].Text != "good morning to you" || evs[0].Turn != 1 {
		t.Fatalf("first event: want the user's turn as a final transcript, got %s", evs[0].Raw)
	}
	var deltas strings.Builder
	n := 0
	prev := ""
	for _, ev := range evs {
		if ev.ID == "" || (prev != "" && session.CompareIDs(ev.ID, prev) <= 0) {
			t.Fatalf("event ids must be present and increase: %s after %q", ev.Raw, prev)
		}
		prev = ev.ID
		if ev.Type == "reply.delta" {
			n++
			deltas.WriteString(ev.Text)
		}
	}
	done := evs[len(evs)-1]
	if want := "echo: good morning to you"; done.Text != want || deltas.String() != want {
		t.Fatalf("reply.done %q, deltas %q; want both %q", done.Text, deltas.String(), want)
	}
	if n < 1 {
		t.Fatalf("no reply.delta before reply.done")
	}
}

func TestConcurrentSessionsGetOnlyTheirOwnReplies(t *testing.T) {
	rdb := newRedis(t)
	model := &echoLLM{max: 4, delay: time.Millisecond}
	// All 200 clients come from 127.0.0.1 at once, with the default
	// (no) per-IP caps. A queue long enough for every turn at once: this
	// tests crossed replies, not busy (TestBackpressureBusy does).
	r := startReplica(t, rdb, model, replicaOpts{engine: turn.Config{Slots: 16, Queue: 2000}})
	const clients, turns = 200, 3
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				c := dial(t, r.URL)
				c.Send(map[string]any{"type": "hello"})
				if ev, err := c.Read(10 * time.Second); err != nil || ev.Type != "session" {
					return fmt.Errorf("client %d hello: %v %s", i, err, ev.Raw)
				}
				want := map[int64]string{}
				for k := 1; k <= turns; k++ {
					text := fmt.Sprintf("client %d turn %d", i, k)
					want[int64(k)] = "echo: " + text
					c.Send(map[string]any{"type": "text", "text": text})
				}
				got := map[int64]string{}
				for len(got) < turns {
					ev, err := c.Read(20 * time.Second)
					if err != nil {
						return fmt.Errorf("client %d: %v after %d replies", i, err, len(got))
					}
					switch ev.Type {
					case "error":
						return fmt.Errorf("client %d: %s", i, ev.Raw)
					case "reply.done":
						if _, dup := got[ev.Turn]; dup {
							return fmt.Errorf("client %d: second reply.done for turn %d", i, ev.Turn)
						}
						got[ev.Turn] = ev.Text
					}
				}
				for k, w := range want {
					if got[k] != w {
						return fmt.Errorf("client %d turn %d: got %q, want %q (a crossed reply?)", i, k, got[k], w)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A client drops mid-reply and resumes on another replica: it gets every
// missed event once, in order, and the next turn sees the whole history.
func TestResumeOnAnotherReplica(t *testing.T) {
	rdb := newRedis(t)
	model := newGateLLM()
	r1 := startReplica(t, rdb, model, replicaOpts{})
	r2 := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{})

	c := dial(t, r1.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "tell me a story"})
	<-model.started
	model.gate <- "Once upon a time, "
	seen := c.Until("reply.delta", 1)
	c.WS.Close() // drops mid-reply

	for _, p := range []string{"there was ", "a replica. ", "The end."} {
		model.gate <- p
	}
	close(model.gate)

	c2 := dial(t, r2.URL)
	if ev := c2.Resume(c.Session, c.Token, c.LastID); ev.Type != "session" || !ev.Resumed || ev.Session != c.Session {
		t.Fatalf("resume: got %s", ev.Raw)
	}
	missed := c2.Until("reply.done", 1)
	all := append(seen, missed...)
	var text strings.Builder
	ids := map[string]bool{}
	prev := ""
	for _, ev := range all {
		if ids[ev.ID] {
			t.Fatalf("event %s delivered twice", ev.ID)
		}
		ids[ev.ID] = true
		if prev != "" && session.CompareIDs(ev.ID, prev) <= 0 {
			t.Fatalf("event %s after %s: out of order", ev.ID, prev)
		}
		prev = ev.ID
		if ev.Type == "reply.delta" {
			text.WriteString(ev.Text)
		}
	}
	const story = "Once upon a time, there was a replica. The end."
	if done := all[len(all)-1]; done.Text != story || text.String() != story {
		t.Fatalf("reply.done %q, deltas %q; want %q", done.Text, text.String(), story)
	}

	// The next turn, answered by replica 2, sees the whole conversation.
	c2.Send(map[string]any{"type": "text", "text": "and then?"})
	c2.Until("reply.done", 2)
	conv := lastConv(t, r2)
	want := []llm.Message{
		{Role: llm.RoleUser, Content: "tell me a story"},
		{Role: llm.RoleAssistant, Content: story},
		{Role: llm.RoleUser, Content: "and then?"},
	}
	if len(conv) != len(want)+1 || conv[0].Role != llm.RoleSystem {
		t.Fatalf("conversation sent to the model: %+v", conv)
	}
	for i, m := range want {
		if got := conv[i+1]; got.Role != m.Role || got.Content != m.Content {
			t.Fatalf("message %d: got %+v, want %+v", i+1, conv[i+1], m)
		}
	}
}

// lastConv returns the last conversation replica r's echoLLM was given.
func lastConv(t *testing.T, r *replica) []llm.Message {
	t.Helper()
	model := r.model.(*echoLLM)
	model.mu.Lock()
	defer model.mu.Unlock()
	if len(model.convs) == 0 {
		t.Fatal("the model was never called")
	}
	return model.convs[len(model.convs)-1]
}

// A replica dies with a turn in flight; another replica takes the turn
// over and the client gets exactly one reply.
func TestDeadReplicasTurnIsTakenOver(t *testing.T) {
	rdb := newRedis(t)
	stuck := newGateLLM()
	cfg := turn.Config{ClaimAfter: 600 * time.Millisecond}
	r1 := startReplica(t, rdb, stuck, replicaOpts{engine: cfg})
	r2 := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{engine: cfg})

	c := dial(t, r1.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "are you there"})
	<-stuck.started
	stuck.gate <- "Partial answer from the replica that dies "
	seen := c.Until("reply.delta", 1)
	r1.kill() // no ack, no drain: its job stays in Redis

	c2 := dial(t, r2.URL)
	if ev := c2.Resume(c.Session, c.Token, c.LastID); ev.Type != "session" {
		t.Fatalf("resume: %s", ev.Raw)
	}
	evs := c2.Until("reply.done", 1)
	done := evs[len(evs)-1]
	if done.Text != "echo: are you there" {
		t.Fatalf("reply.done %q, want the surviving replica's reply", done.Text)
	}
	sawReset := false
	for _, ev := range evs {
		if ev.Type == "reply.delta" && ev.Reset {
			sawReset = true
		}
	}
	if !sawReset {
		t.Fatalf("the takeover's first delta must carry reset (the client drops %d earlier deltas); got %v", len(seen)-1, evs)
	}
	// Exactly one reply.done in the whole log for the turn.
	c3 := dial(t, r2.URL)
	c3.Resume(c.Session, c.Token, "")
	c3.Send(map[string]any{"type": "text", "text": "again"})
	all := c3.Until("reply.done", 2)
	dones := 0
	for _, ev := range all {
		if ev.Type == "reply.done" && ev.Turn == 1 {
			dones++
		}
	}
	if dones != 1 {
		t.Fatalf("turn 1 has %d reply.done events in the log, want 1", dones)
	}
}

func TestRateLimitedReachesTheClient(t *testing.T) {
	rdb := newRedis(t)
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{engine: turn.Config{
		SessionRate: ratelimit.Rule{Rate: 0.2, Burst: 2},
	}})
	c := dial(t, r.URL)
	c.Hello()
	for i := 0; i < 3; i++ {
		c.Send(map[string]any{"type": "text", "text": fmt.Sprintf("turn %d", i)})
	}
	var limited *msg
	replies := 0
	for limited == nil || replies < 2 {
		ev := c.Next()
		switch ev.Type {
		case "error":
			limited = &ev
		case "reply.done":
			replies++
		}
	}
	if limited.Code != "rate_limited" || limited.RetryAfterMs <= 0 || limited.RetryAfterMs > 5000 {
		t.Fatalf("want rate_limited with retry_after_ms in (0, 5000], got %s", limited.Raw)
	}
}

// With the upstream stuck, turns beyond slots + queue are refused with
// busy at once, and the server still answers pings and new clients.
func TestBackpressureBusy(t *testing.T) {
	rdb := newRedis(t)
	model := newGateLLM()
	r := startReplica(t, rdb, model, replicaOpts{engine: turn.Config{Slots: 1, Queue: 1, QueueWait: time.Minute}})
	c := dial(t, r.URL)
	c.Hello()
	for i := 0; i < 5; i++ {
		c.Send(map[string]any{"type": "text", "text": fmt.Sprintf("turn %d", i)})
	}
	busy := 0
	for busy < 3 {
		ev := c.Next()
		switch ev.Type {
		case "error":
			if ev.Code != "busy" || ev.RetryAfterMs <= 0 {
				t.Fatalf("want busy, got %s", ev.Raw)
			}
			busy++
		case "reply.delta", "reply.done":
			t.Fatalf("the stuck upstream cannot have replied: %s", ev.Raw)
		}
	}

	pong := make(chan struct{}, 1)
	c.WS.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	if err := c.WS.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { // pongs are handled inside reads: keep reading until the socket closes
		for {
			if _, err := c.Read(10 * time.Second); err != nil {
				return
			}
		}
	}()
	select {
	case <-pong:
	case <-time.After(5 * time.Second):
		t.Fatal("no pong while the upstream is stuck")
	}
	other := dial(t, r.URL)
	other.Hello() // the server still serves new sessions
	close(model.gate)
}

func TestInterruptStoresWhatWasSent(t *testing.T) {
	rdb := newRedis(t)
	model := newGateLLM()
	r := startReplica(t, rdb, model, replicaOpts{})
	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "talk for a while"})
	<-model.started
	model.gate <- "First part. "
	c.Until("reply.delta", 1)
	c.Send(map[string]any{"type": "interrupt"})
	evs := c.Until("reply.done", 1)
	done := evs[len(evs)-1]
	if !done.Interrupted || done.Text != "First part. " {
		t.Fatalf("want an interrupted reply.done with the text sent so far, got %s", done.Raw)
	}
	if evs[len(evs)-2].Type != "interrupted" {
		t.Fatalf("want interrupted before reply.done, got %v", evs)
	}
}
