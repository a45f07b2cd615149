package fakes

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/parleyhq/parley/pipeline/event"
)

// Turns is a fake turn engine as a voice call sees it (call.Turns). It
// numbers each session's turns from 1 and records what it is asked; the
// test plays the model: Write calls a turn's written callback, as the
// engine does when the model has finished, and Reply also publishes the
// reply's deltas, as the session's log would.
type Turns struct {
	// Events, if set, is the session log the fake publishes to: the
	// deltas of Reply, and on FinishSpoken what the engine stores then
	// (interrupted if cut, and reply.done with what was heard).
	Events *Follower
	// SubmitErr, if set, is what SubmitSpoken fails with.
	SubmitErr error
	// InterruptErr, if set, is what Interrupt fails with (it is still
	// recorded).
	InterruptErr error
	// OnSubmit, if set, runs before SubmitSpoken returns, on its caller's
	// goroutine: a model fast enough to answer before then.
	OnSubmit func(Submitted)
	// OnFinish, if set, runs in FinishSpoken once it is recorded, before
	// what the engine stores is published, on its caller's goroutine: a
	// test can hold the caller there.
	OnFinish func(Finished)

	mu         sync.Mutex
	last       map[string]int64 // each session's last turn
	submitted  []Submitted
	finished   []Finished
	interrupts []string // session ids
	appended   []Submitted
	changes    changes
}

// Submitted is one SubmitSpoken.
type Submitted struct {
	Session string
	Text    string
	Source  event.Source
	Turn    int64
	written func(turn int64, reply string)
}

// Finished is one FinishSpoken.
type Finished struct {
	Session string
	Turn    int64
	Heard   string
	Cut     bool
}

// SubmitSpoken implements call.Turns.
func (t *Turns) SubmitSpoken(ctx context.Context, sessionID, text string, source event.Source, written func(turn int64, reply string)) (int64, error) {
	if t.SubmitErr != nil {
		return 0, t.SubmitErr
	}
	t.mu.Lock()
	if t.last == nil {
		t.last = make(map[string]int64)
	}
	t.last[sessionID]++
	s := Submitted{Session: sessionID, Text: text, Source: source, Turn: t.last[sessionID], written: written}
	t.submitted = append(t.submitted, s)
	t.mu.Unlock()
	t.changes.changed()
	if t.OnSubmit != nil {
		t.OnSubmit(s)
	}
	return s.Turn, nil
}

// FinishSpoken implements call.Turns.
func (t *Turns) FinishSpoken(ctx context.Context, sessionID string, turn int64, heard string, cut bool) {
	f := Finished{Session: sessionID, Turn: turn, Heard: heard, Cut: cut}
	t.mu.Lock()
	t.finished = append(t.finished, f)
	t.mu.Unlock()
	t.changes.changed()
	if t.OnFinish != nil {
		t.OnFinish(f)
	}
	if t.Events != nil {
		if cut {
			t.Events.Publish(sessionID, event.Interrupted{Turn: turn})
		}
		t.Events.Publish(sessionID, event.ReplyDone{Turn: turn, Text: heard, Interrupted: cut})
	}
	t.changes.changed()
}

// AppendItem implements call.Turns: it numbers the item as a turn, as
// the engine does, and records it; nothing replies to it.
func (t *Turns) AppendItem(ctx context.Context, sessionID, text string, source event.Source) (int64, error) {
	if t.SubmitErr != nil {
		return 0, t.SubmitErr
	}
	t.mu.Lock()
	if t.last == nil {
		t.last = make(map[string]int64)
	}
	t.last[sessionID]++
	s := Submitted{Session: sessionID, Text: text, Source: source, Turn: t.last[sessionID]}
	t.appended = append(t.appended, s)
	t.mu.Unlock()
	t.changes.changed()
	return s.Turn, nil
}

// Respond is what a front end's create function does for a spoken
// response (call.Call.Respond): it numbers a new turn, records it among
// the submits (with no text) and keeps written, so that Write and Reply
// work on it.
func (t *Turns) Respond(sessionID string, written func(turn int64, reply string)) int64 {
	t.mu.Lock()
	if t.last == nil {
		t.last = make(map[string]int64)
	}
	t.last[sessionID]++
	s := Submitted{Session: sessionID, Turn: t.last[sessionID], written: written}
	t.submitted = append(t.submitted, s)
	t.mu.Unlock()
	t.changes.changed()
	return s.Turn
}

// Appends are the AppendItem calls so far.
func (t *Turns) Appends() []Submitted {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Submitted(nil), t.appended...)
}

// WaitAppends waits for n AppendItem calls and returns them.
func (t *Turns) WaitAppends(tb testing.TB, n int) []Submitted {
	tb.Helper()
	t.changes.wait(tb, fmt.Sprintf("%d appended items", n), func() bool { return len(t.Appends()) >= n })
	return t.Appends()
}

// Interrupt implements call.Turns.
func (t *Turns) Interrupt(ctx context.Context, sessionID string) error {
	t.mu.Lock()
	t.interrupts = append(t.interrupts, sessionID)
	t.mu.Unlock()
	t.changes.changed()
	return t.InterruptErr
}

// Write hands reply to turn's written callback (of any session), on the
// caller's goroutine: the model has finished the turn.
func (t *Turns) Write(turn int64, reply string) {
	s := t.turn(turn)
	if s.written != nil {
		s.written(turn, reply)
	}
}

// Reply publishes deltas as turn's reply.delta events through Events,
// then Writes their whole: a model streaming the reply of a spoken turn.
func (t *Turns) Reply(turn int64, deltas ...string) {
	t.Deltas(turn, deltas...)
	t.Write(turn, strings.Join(deltas, ""))
}

// Deltas publishes deltas as turn's reply.delta events through Events.
func (t *Turns) Deltas(turn int64, deltas ...string) {
	s := t.turn(turn)
	for _, d := range deltas {
		t.Events.Publish(s.Session, event.ReplyDelta{Turn: turn, Text: d})
	}
}

func (t *Turns) turn(turn int64) Submitted {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.submitted {
		if s.Turn == turn {
			return s
		}
	}
	panic(fmt.Sprintf("fakes: turn %d was never submitted", turn))
}

// Submits are the SubmitSpoken calls so far.
func (t *Turns) Submits() []Submitted {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Submitted(nil), t.submitted...)
}

// Finishes are the FinishSpoken calls so far.
func (t *Turns) Finishes() []Finished {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Finished(nil), t.finished...)
}

// Interrupts is how many times Interrupt was called.
func (t *Turns) Interrupts() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.interrupts)
}

// WaitSubmits waits for n SubmitSpoken calls and returns them.
func (t *Turns) WaitSubmits(tb testing.TB, n int) []Submitted {
	tb.Helper()
	t.changes.wait(tb, fmt.Sprintf("%d submitted turns", n), func() bool { return len(t.Submits()) >= n })
	return t.Submits()
}

// WaitFinishes waits for n FinishSpoken calls and returns them.
func (t *Turns) WaitFinishes(tb testing.TB, n int) []Finished {
	tb.Helper()
	t.changes.wait(tb, fmt.Sprintf("%d finished turns", n), func() bool { return len(t.Finishes()) >= n })
	return t.Finishes()
}
