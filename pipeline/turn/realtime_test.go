package turn_test

import (
	"context"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/turn"
)

// With EndAtClientTools, a reply that calls the client's tool ends at the
// call: reply.done with what was said before it, no step follows when
// the result comes, and the next response sees the call and its result.
// One that asks before the result is in sees that there is none.
func TestEndAtClientTools(t *testing.T) {
	model := &fakes.Tooler{Before: "Let me look. ", Calls: []llm.ToolCall{{Name: "weather", Arguments: `{"city":"Oslo"}`}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{})
	ctx := context.Background()
	id, s := r.session()
	if err := r.store.SetSettings(ctx, id, session.Settings{Tools: []llm.Tool{weather}, EndAtClientTools: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Submit(ctx, id, "weather in Oslo?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	evs := s.until(t, doneOf(1))
	call, ok := toolCallOf(evs)
	if !ok || call.By != event.ByClient {
		t.Fatalf("no client tool.call before reply.done: %+v", evs)
	}
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "Let me look. " || d.Interrupted {
		t.Fatalf("reply.done %+v: want the words before the call", d)
	}
	if err := r.eng.ToolResult(ctx, id, call.CallID, "sunny, 12 C"); err != nil {
		t.Fatalf("the result of a call whose turn ended: %v", err)
	}
	n, err := r.eng.CreateResponse(ctx, id, turn.ResponseOptions{})
	if err != nil || n != 2 {
		t.Fatalf("the next response: turn %d, %v", n, err)
	}
	evs = s.until(t, doneOf(2))
	for _, ev := range evs {
		if d, ok := ev.(event.ReplyDone); ok && d.Turn == 1 {
			t.Fatalf("turn 1 replied again after its result: %+v", d)
		}
	}
	reqs := model.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model calls, want 2: one per response", len(reqs))
	}
	if got := roles(reqs[1].Messages); got != "user:weather in Oslo? | assistant:Let me look. >weather | tool=sunny, 12 C" {
		t.Fatalf("the next response saw %s", got)
	}
	// A second call, whose result never comes: the response after it
	// sees a result that says so (chat APIs refuse a call without one).
	if _, err := r.eng.Submit(ctx, id, "and in Rome?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, doneOf(3))
	if _, err := r.eng.CreateResponse(ctx, id, turn.ResponseOptions{}); err != nil {
		t.Fatal(err)
	}
	s.until(t, doneOf(4))
	reqs = model.Requests()
	if got := roles(reqs[len(reqs)-1].Messages); !strings.HasSuffix(got, "user:and in Rome? | assistant:Let me look. >weather | tool=error: no result was given for this call") {
		t.Fatalf("the response after an unanswered call saw %s", got)
	}
}

// A response's own tools and tool choice take the place of the session's.
func TestResponseTools(t *testing.T) {
	model := &fakes.Tooler{}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{})
	ctx := context.Background()
	id, s := r.session()
	if err := r.store.SetSettings(ctx, id, session.Settings{Tools: []llm.Tool{weather}, ToolChoice: "auto"}); err != nil {
		t.Fatal(err)
	}
	clock := llm.Tool{Name: "clock", Parameters: []byte(`{"type":"object"}`)}
	for i, tc := range []struct {
		opts   turn.ResponseOptions
		tools  string
		choice string
	}{
		{turn.ResponseOptions{}, "weather", "auto"},
		{turn.ResponseOptions{Tools: &[]llm.Tool{clock}, ToolChoice: "required"}, "clock", "required"},
		{turn.ResponseOptions{Tools: &[]llm.Tool{}}, "", "auto"},
	} {
		if _, err := r.eng.AppendItem(ctx, id, "hi", event.SourceText); err != nil {
			t.Fatal(err)
		}
		n, err := r.eng.CreateResponse(ctx, id, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		s.until(t, doneOf(n))
		req := model.Requests()[i]
		var names []string
		for _, tool := range req.Tools {
			names = append(names, tool.Name)
		}
		if got := strings.Join(names, ","); got != tc.tools || req.ToolChoice != tc.choice {
			t.Fatalf("response %d offered %q with choice %q, want %q and %q", i+1, got, req.ToolChoice, tc.tools, tc.choice)
		}
	}
}

// A spoken response that the client asked for is held for its call, as a
// spoken turn is.
func TestCreateSpokenResponse(t *testing.T) {
	r := newRig(t, redistest.Start(t).Client(), &fakes.Echo{}, turn.Config{})
	ctx := context.Background()
	id, s := r.session()
	if _, err := r.eng.AppendItem(ctx, id, "tell me", event.SourceText); err != nil {
		t.Fatal(err)
	}
	written := make(chan string, 1)
	n, err := r.eng.CreateSpokenResponse(ctx, id, turn.ResponseOptions{}, func(_ int64, reply string) { written <- reply })
	if err != nil || n != 1 {
		t.Fatalf("turn %d, %v", n, err)
	}
	if got := <-written; got != "echo: tell me" {
		t.Fatalf("written %q", got)
	}
	r.eng.FinishSpoken(ctx, id, n, "echo:", true)
	evs := s.until(t, doneOf(n))
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "echo:" || !d.Interrupted {
		t.Fatalf("reply.done %+v", d)
	}
}

// SessionLimit tells the session's rule and what is left of its bucket;
// nothing when the session is not limited.
func TestSessionLimit(t *testing.T) {
	rdb := redistest.Start(t).Client()
	r := newRig(t, rdb, &fakes.Echo{}, turn.Config{SessionRate: ratelimit.Rule{Rate: 0.001, Burst: 3}}) // no refill within the test
	ctx := context.Background()
	id, s := r.session()
	if _, err := r.eng.Submit(ctx, id, "hi", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, doneOf(1))
	rule, left, ok, err := r.eng.SessionLimit(ctx, id)
	if err != nil || !ok || rule.Burst != 3 || left.Remaining < 2 || left.Remaining > 2.01 {
		t.Fatalf("rule %+v, left %+v, ok %v, %v", rule, left, ok, err)
	}
	open := newRig(t, rdb, &fakes.Echo{}, turn.Config{})
	if _, _, ok, err := open.eng.SessionLimit(ctx, id); ok || err != nil {
		t.Fatalf("an engine without a session rate: ok %v, %v", ok, err)
	}
}
