package turn_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/turn"
)

var weather = llm.Tool{Name: "weather", Description: "The weather somewhere", Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`)}

// clientTools gives the session the tools its client runs.
func clientTools(t *testing.T, r *rig, id string, tools ...llm.Tool) {
	t.Helper()
	if err := r.store.SetSettings(context.Background(), id, session.Settings{Tools: tools}); err != nil {
		t.Fatal(err)
	}
}

func toolCallOf(evs []event.Event) (event.ToolCall, bool) {
	for _, ev := range evs {
		if c, ok := ev.(event.ToolCall); ok {
			return c, true
		}
	}
	return event.ToolCall{}, false
}

func isToolCall(ev event.Event) bool { _, ok := ev.(event.ToolCall); return ok }

// roles are the conversation's messages as role:content, tool calls as
// role>name, results as tool=content.
func roles(conv []llm.Message) string {
	var b []string
	for _, m := range conv[1:] {
		switch {
		case len(m.ToolCalls) > 0:
			b = append(b, m.Role+":"+m.Content+">"+m.ToolCalls[0].Name)
		case m.ToolCallID != "":
			b = append(b, "tool="+m.Content)
		default:
			b = append(b, m.Role+":"+m.Content)
		}
	}
	return strings.Join(b, " | ")
}

// A client tool: the call reaches the client as a stored tool.call, the
// turn waits without a slot, the client's result lands, and the reply goes
// on in the same turn, with the text said before the call kept.
func TestClientTool(t *testing.T) {
	model := &fakes.Tooler{Before: "Let me look. ", Calls: []llm.ToolCall{{Name: "weather", Arguments: `{"city":"Oslo"}`}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{Slots: 1})
	id, s := r.session()
	clientTools(t, r, id, weather)
	ctx := context.Background()
	if _, err := r.eng.Submit(ctx, id, "weather in Oslo?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	call, _ := toolCallOf(s.until(t, isToolCall))
	if call.Name != "weather" || call.By != event.ByClient || call.Arguments != `{"city":"Oslo"}` || call.Turn != 1 || call.CallID == "" {
		t.Fatalf("tool.call %+v", call)
	}
	// The turn holds no slot while it waits: another session's turn runs.
	other, os := r.session()
	if _, err := r.eng.Submit(ctx, other, "hello", event.SourceText); err != nil {
		t.Fatal(err)
	}
	os.until(t, doneOf(1))

	if err := r.eng.ToolResult(ctx, id, call.CallID, "sunny, 12 C"); err != nil {
		t.Fatal(err)
	}
	evs := s.until(t, doneOf(1))
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "Let me look. done: sunny, 12 C" {
		t.Fatalf("reply.done %q: want the text before the call and the answer", d.Text)
	}
	reqs := model.Requests()
	if got := roles(reqs[len(reqs)-1].Messages); got != "user:weather in Oslo? | assistant:Let me look. >weather | tool=sunny, 12 C" {
		t.Fatalf("the follow-up call saw %s", got)
	}
	if len(reqs[0].Tools) != 1 || reqs[0].Tools[0].Name != "weather" {
		t.Fatalf("tools offered: %+v", reqs[0].Tools)
	}
	// The next turn sees the whole of it, in order.
	if _, err := r.eng.Submit(ctx, id, "thanks", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, func(ev event.Event) bool { _, ok := ev.(event.ToolCall); return ok && event.TurnOf(ev) == 2 })
	reqs = model.Requests()
	if got := roles(reqs[len(reqs)-1].Messages); !strings.HasPrefix(got, "user:weather in Oslo? | assistant:Let me look. >weather | tool=sunny, 12 C | assistant:done: sunny, 12 C | user:thanks") {
		t.Fatalf("the next turn saw %s", got)
	}
	// A result for a call nobody waits for, or answered twice.
	for _, callID := range []string{"call_nobody_made", call.CallID} {
		if err := r.eng.ToolResult(ctx, id, callID, "x"); !errors.Is(err, turn.ErrUnknownCall) {
			t.Fatalf("result for %s: %v", callID, err)
		}
	}
}

// A server tool: run by the engine, its result stored as tool.done, the
// reply goes on.
func TestServerTool(t *testing.T) {
	box := &fakes.Toolbox{Offered: []llm.Tool{{Name: "clock", Description: "the time"}}, Run: func(context.Context, string, json.RawMessage) (string, error) {
		return "3:04 PM", nil
	}}
	// No space after the words before the call: the engine puts one
	// between the steps.
	model := &fakes.Tooler{Before: "Checking.", Calls: []llm.ToolCall{{Name: "clock"}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{Toolbox: box})
	id, s := r.session()
	if _, err := r.eng.Submit(context.Background(), id, "what time is it", event.SourceText); err != nil {
		t.Fatal(err)
	}
	evs := s.until(t, doneOf(1))
	call, _ := toolCallOf(evs)
	var done event.ToolDone
	for _, ev := range evs {
		if d, ok := ev.(event.ToolDone); ok {
			done = d
		}
	}
	if call.By != event.ByServer || call.Arguments != "{}" || done.CallID != call.CallID || done.Output != "3:04 PM" {
		t.Fatalf("tool.call %+v, tool.done %+v", call, done)
	}
	var deltas string
	for _, ev := range evs {
		if d, ok := ev.(event.ReplyDelta); ok {
			deltas += d.Text
		}
	}
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "Checking. done: 3:04 PM" || deltas != d.Text || box.Calls() != 1 {
		t.Fatalf("reply %q after %d calls", d.Text, box.Calls())
	}
}

// What the model gets wrong is told to it, and the turn goes on: a tool it
// made up, arguments that are not JSON, a tool that fails.
func TestBadToolCalls(t *testing.T) {
	box := &fakes.Toolbox{Offered: []llm.Tool{{Name: "fails"}}, Run: func(context.Context, string, json.RawMessage) (string, error) {
		return "", errors.New("the service is down")
	}}
	model := &fakes.Tooler{Any: true, Calls: []llm.ToolCall{{Name: "teleport"}, {Name: "fails", Arguments: `{"a":`}, {Name: "fails", Arguments: `{}`}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{Toolbox: box})
	id, s := r.session()
	if _, err := r.eng.Submit(context.Background(), id, "do things", event.SourceText); err != nil {
		t.Fatal(err)
	}
	evs := s.until(t, doneOf(1))
	calls := 0
	for _, ev := range evs {
		if isToolCall(ev) {
			calls++
		}
	}
	text := evs[len(evs)-1].(event.ReplyDone).Text
	for _, want := range []string{`there is no tool named "teleport"`, "not valid JSON", "error: the service is down"} {
		if !strings.Contains(text, want) {
			t.Errorf("the model was not told %q: %q", want, text)
		}
	}
	if calls != 1 || box.Calls() != 1 {
		t.Fatalf("%d tool.call events and %d runs: only the valid call of an offered tool runs", calls, box.Calls())
	}
}

// A client that does not answer: after ToolTimeout (the fake clock's) the
// model is told so and the reply goes on.
func TestClientToolTimesOut(t *testing.T) {
	model := &fakes.Tooler{Calls: []llm.ToolCall{{Name: "weather"}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{ToolTimeout: 20 * time.Second})
	id, s := r.session()
	clientTools(t, r, id, weather)
	if _, err := r.eng.Submit(context.Background(), id, "weather?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, isToolCall)
	for r.clk.Timers() == 0 { // the wait's timer is set after the call is stored
		time.Sleep(time.Millisecond)
	}
	r.clk.Advance(20 * time.Second)
	evs := s.until(t, doneOf(1))
	if d := evs[len(evs)-1].(event.ReplyDone); !strings.Contains(d.Text, "did not answer within 20s") {
		t.Fatalf("reply %q", d.Text)
	}
}

// An interruption while a tool runs: the call gets "cancelled" (the history
// never holds a call without its result), the turn ends interrupted with
// what was said before the call.
func TestInterruptWhileWaiting(t *testing.T) {
	model := &fakes.Tooler{Before: "Let me look. ", Calls: []llm.ToolCall{{Name: "weather"}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{})
	id, s := r.session()
	clientTools(t, r, id, weather)
	ctx := context.Background()
	if _, err := r.eng.Submit(ctx, id, "weather?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	call, _ := toolCallOf(s.until(t, isToolCall))
	if err := r.eng.Interrupt(ctx, id); err != nil {
		t.Fatal(err)
	}
	evs := s.until(t, doneOf(1))
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "Let me look. " || !d.Interrupted {
		t.Fatalf("reply.done %+v", d)
	}
	hist, _ := r.store.History(ctx, id, 10)
	if n := len(hist); n != 3 || hist[2].CallID != call.CallID || !strings.HasPrefix(hist[2].Content, "cancelled") {
		t.Fatalf("history %+v: want the call's result, cancelled", hist)
	}
	if err := r.eng.ToolResult(ctx, id, call.CallID, "too late"); !errors.Is(err, turn.ErrUnknownCall) {
		t.Fatalf("a result after the interruption: %v", err)
	}
}

// A model that calls tools without end is made to answer after ToolSteps.
func TestToolStepsAreBounded(t *testing.T) {
	box := &fakes.Toolbox{Offered: []llm.Tool{{Name: "again"}}}
	model := &fakes.Tooler{Always: true, Calls: []llm.ToolCall{{Name: "again"}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{Toolbox: box, ToolSteps: 3})
	id, s := r.session()
	if _, err := r.eng.Submit(context.Background(), id, "loop", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, doneOf(1))
	reqs := model.Requests()
	if box.Calls() != 3 || len(reqs) != 4 || len(reqs[3].Tools) != 0 {
		t.Fatalf("%d tool runs, %d model calls (the last offered %d tools): want 3, 4, 0", box.Calls(), len(reqs), len(reqs[3].Tools))
	}
}

// A replica that dies while its turn waits for the client: the client's
// result, on another replica, still lands, and the reply comes once.
func TestResultAfterTheWaitingReplicaDied(t *testing.T) {
	rdb := redistest.Start(t).Client()
	model := &fakes.Tooler{Before: "One moment. ", Calls: []llm.ToolCall{{Name: "weather"}}}
	a := newRig(t, rdb, model, turn.Config{ReplicaID: "a", ClaimAfter: 3 * time.Second})
	id, _ := a.session()
	clientTools(t, a, id, weather)
	ctx := context.Background()
	b := newRig(t, rdb, model, turn.Config{ReplicaID: "b", ClaimAfter: 3 * time.Second})
	s := b.follow(id)
	if _, err := a.eng.Submit(ctx, id, "weather?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	call, _ := toolCallOf(s.until(t, isToolCall))
	a.stop() // dies waiting: its job stays in its stream

	if err := b.eng.ToolResult(ctx, id, call.CallID, "rain"); err != nil {
		t.Fatal(err)
	}
	evs := s.until(t, doneOf(1))
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "One moment. done: rain" {
		t.Fatalf("reply.done %q", d.Text)
	}
	// Once: b's heartbeat later finds a dead and takes over its stream,
	// which no longer holds the job.
	for b.clk.Tickers() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.clk.Advance(time.Second)
	if _, err := b.eng.Submit(ctx, id, "and tomorrow?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	for _, ev := range s.until(t, func(ev event.Event) bool { return isToolCall(ev) && event.TurnOf(ev) == 2 }) {
		if d, ok := ev.(event.ReplyDone); ok && d.Turn == 1 {
			t.Fatalf("turn 1 answered twice: %+v", d)
		}
	}
}

// A replica that takes a waiting turn over waits on: it runs the server's
// tool again and the reply comes once.
func TestTakeoverOfAWaitingTurn(t *testing.T) {
	rdb := redistest.Start(t).Client()
	hang := make(chan struct{})
	box := &fakes.Toolbox{Offered: []llm.Tool{{Name: "slow"}}, Run: func(ctx context.Context, _ string, _ json.RawMessage) (string, error) {
		select {
		case <-hang:
			return "late", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}}
	model := &fakes.Tooler{Calls: []llm.ToolCall{{Name: "slow"}}}
	a := newRig(t, rdb, model, turn.Config{ReplicaID: "a", ClaimAfter: 3 * time.Second, Toolbox: box})
	id, s := a.session()
	ctx := context.Background()
	if _, err := a.eng.Submit(ctx, id, "go", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, isToolCall)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	_ = a.eng.Drain(gone) // hands its turns over at once
	a.stop()
	close(hang)

	b := newRig(t, rdb, model, turn.Config{ReplicaID: "b", ClaimAfter: 3 * time.Second, Toolbox: box})
	sb := b.follow(id)
	for b.clk.Tickers() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.clk.Advance(time.Second)
	evs := sb.until(t, doneOf(1))
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "done: late" {
		t.Fatalf("reply.done %q", d.Text)
	}
}

// A spoken turn with a tool: the call gets the whole reply, the text
// before the call and the answer, and the history keeps each where it was
// said.
func TestSpokenTurnWithATool(t *testing.T) {
	model := &fakes.Tooler{Before: "Let me look. ", Calls: []llm.ToolCall{{Name: "weather"}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{})
	id, s := r.session()
	clientTools(t, r, id, weather)
	ctx := context.Background()
	written := make(chan string, 1)
	n, err := r.eng.SubmitSpoken(ctx, id, "weather?", event.SourceVoice, func(_ int64, reply string) { written <- reply })
	if err != nil {
		t.Fatal(err)
	}
	call, _ := toolCallOf(s.until(t, isToolCall))
	if err := r.eng.ToolResult(ctx, id, call.CallID, "fog"); err != nil {
		t.Fatal(err)
	}
	if got := <-written; got != "Let me look. done: fog" {
		t.Fatalf("written %q", got)
	}
	r.eng.FinishSpoken(ctx, id, n, "Let me look. done: fog", false)
	evs := s.until(t, doneOf(n))
	if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "Let me look. done: fog" {
		t.Fatalf("reply.done %q", d.Text)
	}
	hist, _ := r.store.History(ctx, id, 10)
	if len(hist) != 4 || hist[1].Content != "Let me look. " || hist[3].Content != "done: fog" {
		t.Fatalf("history %+v", hist)
	}
}

// A client's output of megabytes reaches the model cut to MaxToolOutput,
// with a note that says so; the reply goes on.
func TestHugeToolOutputIsCut(t *testing.T) {
	model := &fakes.Tooler{Calls: []llm.ToolCall{{Name: "weather"}}}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{})
	id, s := r.session()
	clientTools(t, r, id, weather)
	ctx := context.Background()
	if _, err := r.eng.Submit(ctx, id, "weather?", event.SourceText); err != nil {
		t.Fatal(err)
	}
	call, _ := toolCallOf(s.until(t, isToolCall))
	if err := r.eng.ToolResult(ctx, id, call.CallID, strings.Repeat("é", 1<<20)); err != nil {
		t.Fatal(err)
	}
	s.until(t, doneOf(1))
	reqs := model.Requests()
	got := reqs[len(reqs)-1].Messages[len(reqs[len(reqs)-1].Messages)-1].Content
	if len(got) > 16<<10+100 || !strings.Contains(got, "[the output was cut:") || !utf8.ValidString(got) {
		t.Fatalf("the model got %d bytes (valid UTF-8: %v), ending %q", len(got), utf8.ValidString(got), got[max(0, len(got)-60):])
	}
}

// A session's selection of the server's tools: the model is offered only
// those, and a call of another is refused as a made-up name is, not run;
// no selection offers them all (the default), an empty one none.
func TestServerToolsSelected(t *testing.T) {
	rdb := redistest.Start(t).Client()
	list := func(s ...string) *[]string { return &s } // list() points to nil: stored as empty
	for _, c := range []struct {
		name    string
		sel     *[]string
		offered string // the tools in the model's request
		runs    int
		refused int // calls told "there is no tool named"
	}{
		{"default: all", nil, "echo,add", 2, 0},
		{"one tool", list("echo"), "echo", 1, 1},
		{"the whole server", list("box.*"), "echo,add", 2, 0},
		// With no tool offered, a call is no call (batch.go): none runs.
		{"none", list(), "", 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			box := &fakes.Toolbox{Offered: []llm.Tool{{Name: "echo"}, {Name: "add"}}}
			// Any: the model calls both whatever it was offered.
			model := &fakes.Tooler{Any: true, Calls: []llm.ToolCall{{Name: "echo"}, {Name: "add"}}}
			r := newRig(t, rdb, model, turn.Config{Toolbox: box})
			id, s := r.session()
			ctx := context.Background()
			if err := r.store.SetSettings(ctx, id, session.Settings{ServerTools: c.sel}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.eng.Submit(ctx, id, "use them", event.SourceText); err != nil {
				t.Fatal(err)
			}
			evs := s.until(t, doneOf(1))
			var offered []string
			for _, tl := range model.Requests()[0].Tools {
				offered = append(offered, tl.Name)
			}
			calls := 0
			for _, ev := range evs {
				if isToolCall(ev) {
					calls++
				}
			}
			text := evs[len(evs)-1].(event.ReplyDone).Text
			if strings.Join(offered, ",") != c.offered || box.Calls() != c.runs || calls != c.runs {
				t.Fatalf("offered %v; %d runs, %d tool.call events; reply %q", offered, box.Calls(), calls, text)
			}
			if refused := strings.Count(text, "there is no tool named"); refused != c.refused {
				t.Fatalf("%d calls refused as unknown, want %d: %q", refused, c.refused, text)
			}
		})
	}
}
