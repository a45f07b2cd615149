package turn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/turn"
)

// rig is one replica's engine on a real Redis, with a fake clock, and a
// follower of one session's events.
type rig struct {
	t      *testing.T
	store  *session.Store
	hub    *session.Hub
	eng    *turn.Engine
	clk    *testkit.Clock
	cancel context.CancelFunc
	done   chan struct{}
}

func newRig(t *testing.T, rdb *redis.Client, model llm.LLM, cfg turn.Config) *rig {
	t.Helper()
	return newRigWith(t, rdb, model, cfg, ratelimit.New(rdb, ratelimit.Config{}))
}

// newRigWith is newRig with the rate limiter given.
func newRigWith(t *testing.T, rdb *redis.Client, model llm.LLM, cfg turn.Config, limiter turn.Limiter) *rig {
	t.Helper()
	return newRigOn(t, rdb, rdb, model, cfg, limiter)
}

// newRigOn is newRigWith with the store and the engine on cmds (the
// server's autopipeliner, say) and Pub/Sub on rdb, as the server wires
// them.
func newRigOn(t *testing.T, rdb *redis.Client, cmds redis.UniversalClient, model llm.LLM, cfg turn.Config, limiter turn.Limiter) *rig {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	clk := testkit.NewClock()
	cfg.Clock = clk
	store := session.NewStore(cmds, session.Config{})
	hub := session.NewHub(rdb, store, log)
	eng, err := turn.NewEngine(cmds, store, limiter, model, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, store: store, hub: hub, eng: eng, clk: clk, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = hub.Run(ctx) }()
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	go func() { wg.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends the replica as a crash would: no drain.
func (r *rig) stop() {
	r.cancel()
	<-r.done
}

// session creates a session and follows its events.
func (r *rig) session() (string, *sink) {
	r.t.Helper()
	ctx := context.Background()
	id, _, err := r.store.Create(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return id, r.follow(id)
}

// follow collects the session's live events, through this replica.
func (r *rig) follow(id string) *sink {
	r.t.Helper()
	s := &sink{events: make(chan event.Event, 1000)}
	stop, err := r.hub.Follow(context.Background(), id, s)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(stop)
	return s
}

// sink collects a session's live events.
type sink struct{ events chan event.Event }

func (s *sink) Deliver(_ string, wire []byte) {
	if _, ev, err := event.Decode(wire); err == nil {
		s.events <- ev
	}
}
func (s *sink) Resync() {}

// until returns the events up to the first one that done accepts.
func (s *sink) until(t *testing.T, done func(event.Event) bool) []event.Event {
	t.Helper()
	var got []event.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.events:
			got = append(got, ev)
			if done(ev) {
				return got
			}
		case <-timeout:
			t.Fatalf("no such event; got %+v", got)
		}
	}
}

func doneOf(turn int64) func(event.Event) bool {
	return func(ev event.Event) bool {
		d, ok := ev.(event.ReplyDone)
		return ok && d.Turn == turn
	}
}

func errorOf(turn int64) func(event.Event) bool {
	return func(ev event.Event) bool {
		e, ok := ev.(event.Error)
		return ok && e.Turn == turn
	}
}

func contents(conv []llm.Message) string {
	var b []string
	for _, m := range conv {
		b = append(b, m.Role+": "+m.Content)
	}
	return strings.Join(b, " | ")
}

func TestSubmitStreamsTheReplyIntoTheLog(t *testing.T) {
	model := &fakes.Echo{}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{SystemPrompt: "sys"})
	id, s := r.session()
	n, err := r.eng.Submit(context.Background(), id, "hello there", event.SourceText)
	if err != nil || n != 1 {
		t.Fatalf("turn %d, %v", n, err)
	}
	evs := s.until(t, doneOf(1))
	if tr, ok := evs[0].(event.Transcript); !ok || tr.Text != "hello there" || !tr.Final || tr.Source != event.SourceText {
		t.Fatalf("first event %+v: want the user's turn", evs[0])
	}
	var deltas string
	for _, ev := range evs[1 : len(evs)-1] {
		deltas += ev.(event.ReplyDelta).Text
	}
	if done := evs[len(evs)-1].(event.ReplyDone); done.Text != "echo: hello there" || deltas != done.Text {
		t.Fatalf("deltas %q, done %+v", deltas, done)
	}
	if got := contents(model.Convs()[0]); got != "system: sys | user: hello there" {
		t.Fatalf("the model saw %s", got)
	}
	// Stored as it was sent: a client that resumes reads the same.
	stored, _ := r.store.Range(context.Background(), id, "", 100)
	if len(stored) != len(evs) {
		t.Fatalf("%d events stored, %d sent", len(stored), len(evs))
	}
}

// With the clock standing still, a reply that comes whole (before the
// first piece's FirstWait is up) is stored in one piece with its end: few
// writes for a fast model.
func TestDeltasCoalesce(t *testing.T) {
	r := newRig(t, redistest.Start(t).Client(), &fakes.Echo{}, turn.Config{})
	id, s := r.session()
	if _, err := r.eng.Submit(context.Background(), id, "one two three four", event.SourceText); err != nil {
		t.Fatal(err)
	}
	deltas := deltaTexts(s.until(t, doneOf(1)))
	if fmt.Sprint(deltas) != "[echo: one two three four]" {
		t.Fatalf("deltas %q: want the whole reply in one piece", deltas)
	}
}

// deltaTexts is the texts of the reply.delta events among evs.
func deltaTexts(evs []event.Event) []string {
	var out []string
	for _, ev := range evs {
		if d, ok := ev.(event.ReplyDelta); ok {
			out = append(out, d.Text)
		}
	}
	return out
}

// isDelta matches a reply.delta.
func isDelta(ev event.Event) bool { _, ok := ev.(event.ReplyDelta); return ok }

// firstDelta submits a turn to a gated model, sends its first piece,
// Hello, and lets FirstWait (2 ms, the default) pass on the rig's clock;
// it returns the session's sink and the first delta stored.
func firstDelta(t *testing.T, r *rig, gate *fakes.Gate) (*sink, event.ReplyDelta) {
	t.Helper()
	id, s := r.session()
	if _, err := r.eng.Submit(context.Background(), id, "hi", event.SourceText); err != nil {
		t.Fatal(err)
	}
	<-gate.Started
	timers := r.clk.Timers()
	gate.Send("Hello")
	for r.clk.Timers() == timers { // the first piece's timer
		time.Sleep(time.Millisecond)
	}
	r.clk.Advance(2 * time.Millisecond)
	evs := s.until(t, isDelta)
	return s, evs[len(evs)-1].(event.ReplyDelta)
}

// A model that pauses after its first piece (a streaming one) has that
// piece stored FirstWait after it came, and the rest at its end.
func TestFirstPieceWaitsFirstWait(t *testing.T) {
	gate := fakes.NewGate()
	r := newRig(t, redistest.Start(t).Client(), gate, turn.Config{})
	s, d := firstDelta(t, r, gate)
	if d.Text != "Hello" {
		t.Fatalf("first delta %q, want the first piece", d.Text)
	}
	gate.Send(" there")
	gate.Send(", you.")
	gate.Finish()
	deltas := deltaTexts(s.until(t, doneOf(1)))
	if fmt.Sprint(deltas) != "[ there, you.]" {
		t.Fatalf("deltas after the first %q: want the rest at the end", deltas)
	}
}

// After its first delta, text a model leaves buffered when it pauses is
// stored Coalesce (50 ms, the default) after the last delta, before the
// reply ends: the batch's pause timer, armed by the first flush.
func TestPauseStoresBufferedText(t *testing.T) {
	gate := fakes.NewGate()
	r := newRig(t, redistest.Start(t).Client(), gate, turn.Config{})
	s, _ := firstDelta(t, r, gate)
	gate.Send(" there")
	gate.Send(" now") // taken once the last piece is buffered
	r.clk.Advance(50 * time.Millisecond)
	evs := s.until(t, isDelta) // before the model ends
	if d := evs[len(evs)-1].(event.ReplyDelta); !strings.HasPrefix(d.Text, " there") {
		t.Fatalf("delta after the pause %q, want the text buffered before it", d.Text)
	}
	gate.Finish()
	s.until(t, doneOf(1))
}

// A typed turn on an idle replica whose reply comes whole costs Redis two
// script calls: its storing and start in one, and its finish (no delta of
// its own, FirstWait).
func TestTypedTurnTakesTwoScripts(t *testing.T) {
	rdb := redistest.Start(t).Client()
	r := newRig(t, rdb, &fakes.Echo{}, turn.Config{})
	warm, ws := r.session() // loads the scripts
	submit(t, r, warm, "warm up")
	ws.until(t, doneOf(1))
	id, s := r.session()
	before := scriptCalls(t, rdb)
	submit(t, r, id, "hello")
	s.until(t, doneOf(1))
	if n := scriptCalls(t, rdb) - before; n != 2 {
		t.Fatalf("%d script calls for a typed turn, want 2", n)
	}
}

// Under load the queue is seldom empty: a typed turn is still stored and
// started in one script when no turn of its own session waits or runs here,
// and not when one does, whose reply it must see.
func TestTypedTurnStartsAtOnceBehindOthers(t *testing.T) {
	rdb := redistest.Start(t).Client()
	hold := make(chan struct{})
	model := &fakes.Echo{Hold: hold}
	// One slot (the default is 16): the first turn holds it, the others queue.
	r := newRig(t, rdb, model, turn.Config{Slots: 1})
	warm, ws := r.session() // loads the scripts
	close(hold)
	submit(t, r, warm, "warm up")
	ws.until(t, doneOf(1))
	hold = make(chan struct{})
	model.Hold = hold

	a, as := r.session()
	b, bs := r.session()
	c, cs := r.session()
	before := scriptCalls(t, rdb) // after the follows' own scripts
	submit(t, r, a, "a")          // takes the slot
	submit(t, r, b, "b1")         // queued behind a, its own session's first
	submit(t, r, c, "c")          // queued behind b1: another session's turn waits
	submit(t, r, b, "b2")         // b1 waits: started only when its slot takes it
	close(hold)
	as.until(t, doneOf(1))
	cs.until(t, doneOf(1))
	bs.until(t, doneOf(2))
	// Two scripts a turn (stored and started, finished), and one more for
	// b2's start.
	if n := scriptCalls(t, rdb) - before; n != 9 {
		t.Fatalf("%d script calls for four typed turns, want 9", n)
	}
	var b2 []llm.Message
	for _, conv := range model.Convs() {
		if fakes.LastUser(conv) == "b2" {
			b2 = conv
		}
	}
	if got := contents(b2); !strings.Contains(got, "user: b1 | assistant: echo: b1 | user: b2") {
		t.Fatalf("b2's model saw %s", got)
	}
}

func submit(t *testing.T, r *rig, id, text string) {
	t.Helper()
	if _, err := r.eng.Submit(context.Background(), id, text, event.SourceText); err != nil {
		t.Fatal(err)
	}
}

// scriptCalls is how many scripts Redis has run.
func scriptCalls(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	return redistest.Calls(t, rdb, "evalsha", "eval")
}

// Items appended without a response wait; a response sees them all, under
// the last item's turn; a response with nothing new gets a turn of its own
// and sees the earlier reply.
func TestItemsAndResponses(t *testing.T) {
	model := &fakes.Echo{}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{SystemPrompt: "sys"})
	id, s := r.session()
	ctx := context.Background()
	for i, text := range []string{"first", "second"} {
		if n, err := r.eng.AppendItem(ctx, id, text, event.SourceText); err != nil || n != int64(i+1) {
			t.Fatalf("item %d: turn %d, %v", i+1, n, err)
		}
	}
	s.until(t, func(ev event.Event) bool { tr, ok := ev.(event.Transcript); return ok && tr.Turn == 2 })
	if len(model.Convs()) != 0 {
		t.Fatal("an item without a response reached the model")
	}
	n, err := r.eng.CreateResponse(ctx, id, turn.ResponseOptions{})
	if err != nil || n != 2 {
		t.Fatalf("response turn %d, %v; want 2, the last item's", n, err)
	}
	s.until(t, doneOf(2))
	if got := contents(model.Convs()[0]); got != "system: sys | user: first | user: second" {
		t.Fatalf("the model saw %s", got)
	}
	if n, err = r.eng.CreateResponse(ctx, id, turn.ResponseOptions{}); err != nil || n != 3 {
		t.Fatalf("a second response: turn %d, %v; want a turn of its own", n, err)
	}
	s.until(t, doneOf(3))
	if got := contents(model.Convs()[1]); got != "system: sys | user: first | user: second | assistant: echo: second" {
		t.Fatalf("the model saw %s", got)
	}
}

// The system prompt is the response's own, else the session's (stored
// with it), else the server's.
func TestInstructions(t *testing.T) {
	model := &fakes.Echo{}
	r := newRig(t, redistest.Start(t).Client(), model, turn.Config{SystemPrompt: "server"})
	ctx := context.Background()
	plain, ps := r.session()
	styled, ss := r.session()
	if err := r.store.SetSettings(ctx, styled, session.Settings{Instructions: "session"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		s    *sink
		opts turn.ResponseOptions
		want string
	}{
		{plain, ps, turn.ResponseOptions{}, "server"},
		{styled, ss, turn.ResponseOptions{}, "session"},
		{styled, ss, turn.ResponseOptions{Instructions: "response"}, "response"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			before := len(model.Convs())
			if _, err := r.eng.AppendItem(ctx, tc.id, "hi", event.SourceText); err != nil {
				t.Fatal(err)
			}
			n, err := r.eng.CreateResponse(ctx, tc.id, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			tc.s.until(t, doneOf(n))
			if conv := model.Convs()[before]; conv[0].Content != tc.want {
				t.Fatalf("system prompt %q, want %q", conv[0].Content, tc.want)
			}
		})
	}
}

// takeOver makes replica a hand its turns over and die (a drain whose time
// is up, then no beat), and starts replica b with model and cfg, following
// the session id; b's next beat (a third of ClaimAfter on the fake clock:
// 5 s at the default's 15) takes a's turns.
func takeOver(t *testing.T, a *rig, rdb *redis.Client, model llm.LLM, id string, cfg turn.Config) (*rig, *sink) {
	t.Helper()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.eng.Drain(gone)
	a.stop()
	b := newRig(t, rdb, model, cfg)
	s := b.follow(id)
	for b.clk.Tickers() == 0 { // b's heartbeat is running
		time.Sleep(time.Millisecond)
	}
	claim := cfg.ClaimAfter
	if claim == 0 {
		claim = 15 * time.Second // the default
	}
	b.clk.Advance(claim / 3) // b's next beat finds a gone
	return b, s
}

// A replica that takes a response over from a dead one answers it with
// the response's options and the session's settings.
func TestTakeoverKeepsTheResponsesOptions(t *testing.T) {
	rdb := redistest.Start(t).Client()
	stuck := fakes.NewGate()
	a := newRig(t, rdb, stuck, turn.Config{ReplicaID: "a"})
	ctx := context.Background()
	id, _ := a.session()
	if _, err := a.eng.AppendItem(ctx, id, "hi", event.SourceText); err != nil {
		t.Fatal(err)
	}
	if _, err := a.eng.CreateResponse(ctx, id, turn.ResponseOptions{Instructions: "be brief"}); err != nil {
		t.Fatal(err)
	}
	<-stuck.Started
	// a hands its turns over and dies with the call under way.
	model := &fakes.Echo{}
	_, s := takeOver(t, a, rdb, model, id, turn.Config{ReplicaID: "b"})
	done := s.until(t, doneOf(1))
	if d := done[len(done)-1].(event.ReplyDone); d.Text != "echo: hi" {
		t.Fatalf("reply %+v", d)
	}
	if conv := model.Convs()[0]; conv[0].Content != "be brief" {
		t.Fatalf("the takeover's system prompt %q, want the response's", conv[0].Content)
	}
}

// A replica's jobs are a hash, P:jobq:{replica}. A typed turn's job goes
// beside its start, in its round trip, so it names the turn's run (the
// turn is not known yet): a replica that takes over finds the turn that
// run owns and answers it once, and drops a job whose run owns no turn
// (its script never ran, or the turn has its reply). A job stream left by
// a replica from before the hash is taken over too.
func TestTakeoverOfJobs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		left   string // what replica a leaves: "typed", "orphan" or "stream"
		answer bool
	}{
		{"a typed turn, its job named by its run", "typed", true},
		{"a job whose run owns no turn", "orphan", false},
		{"a job stream from before the hash", "stream", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Start(t).Client()
			ctx := context.Background()
			stuck := fakes.NewGate()
			a := newRig(t, rdb, stuck, turn.Config{ReplicaID: "a"})
			id, _ := a.session()
			const jobs, legacy = "parley:jobq:{a}", "parley:jobs:{a}"
			switch tc.left {
			case "typed":
				if _, err := a.eng.Submit(ctx, id, "hi", event.SourceText); err != nil {
					t.Fatal(err)
				}
				<-stuck.Started
				all, _ := rdb.HGetAll(ctx, jobs).Result()
				for _, v := range all {
					if len(all) != 1 || !strings.Contains(v, `"r":`) || strings.Contains(v, `"t":`) {
						t.Fatalf("jobs %v: want one, named by its run", all)
					}
				}
			case "orphan":
				rdb.HSet(ctx, jobs, "1-1", fmt.Sprintf(`{"s":%q,"r":"no-such-run"}`, id))
			case "stream":
				turnN, _, err := a.store.AppendUserTurn(ctx, id, "hi", "text")
				if err != nil {
					t.Fatal(err)
				}
				rdb.XAdd(ctx, &redis.XAddArgs{Stream: legacy, Values: []any{"s", id, "t", turnN}})
			}
			model := &fakes.Echo{}
			_, s := takeOver(t, a, rdb, model, id, turn.Config{ReplicaID: "b"})
			if !tc.answer {
				for n := int64(1); n > 0; n, _ = rdb.Exists(ctx, jobs, legacy).Result() {
					time.Sleep(time.Millisecond) // dropped, and its key gone with it
				}
				if len(model.Convs()) != 0 {
					t.Fatalf("the model was called for a job with no turn: %v", model.Convs())
				}
				return
			}
			done := s.until(t, doneOf(1))
			if d := done[len(done)-1].(event.ReplyDone); d.Text != "echo: hi" {
				t.Fatalf("reply %+v", d)
			}
			for n := int64(1); n > 0; n, _ = rdb.Exists(ctx, jobs, legacy).Result() {
				time.Sleep(time.Millisecond) // a's jobs moved to b, and done there
			}
		})
	}
}

// A replica that restarts with its id takes its own jobs back. One named
// by its run is named by its turn from then on: the restarted replica's
// run now owns the turn, and a second takeover could not find it by the
// old one.
func TestRestartRenamesAJobNamedByRun(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	stuck := fakes.NewGate()
	a := newRig(t, rdb, stuck, turn.Config{ReplicaID: "a"})
	id, _ := a.session()
	if _, err := a.eng.Submit(ctx, id, "hi", event.SourceText); err != nil {
		t.Fatal(err)
	}
	<-stuck.Started
	a.stop() // a crash: the job stays

	again := fakes.NewGate()
	a2 := newRig(t, rdb, again, turn.Config{ReplicaID: "a"})
	s := a2.follow(id)
	<-again.Started // taken back and started by a run of a2's
	all, _ := rdb.HGetAll(ctx, "parley:jobq:{a}").Result()
	for _, v := range all {
		if len(all) != 1 || !strings.Contains(v, `"t":1`) || strings.Contains(v, `"r":`) {
			t.Fatalf("jobs %v: want one, named by its turn", all)
		}
	}
	again.Send("back")
	again.Finish()
	if d := s.until(t, doneOf(1)); d[len(d)-1].(event.ReplyDone).Text != "back" {
		t.Fatalf("reply %+v", d[len(d)-1])
	}
}

// A turn that waits for a slot longer than QueueWait is refused with busy
// (and marked finished); time is the fake clock's, so nothing sleeps.
func TestQueueWaitGivesBusy(t *testing.T) {
	gate := fakes.NewGate()
	r := newRig(t, redistest.Start(t).Client(), gate, turn.Config{Slots: 1, Queue: 4, QueueWait: 10 * time.Second})
	id, s := r.session()
	ctx := context.Background()
	if _, err := r.eng.Submit(ctx, id, "first", event.SourceText); err != nil {
		t.Fatal(err)
	}
	<-gate.Started // the one slot is taken
	n, err := r.eng.Submit(ctx, id, "second", event.SourceText)
	if err != nil {
		t.Fatal(err)
	}
	s.until(t, func(ev event.Event) bool { tr, ok := ev.(event.Transcript); return ok && tr.Turn == n })
	for r.clk.Timers() == 0 { // the dispatcher's wake-up for the queued turn
		time.Sleep(time.Millisecond)
	}
	r.clk.Advance(10*time.Second + 2*time.Millisecond)
	evs := s.until(t, errorOf(n))
	if e := evs[len(evs)-1].(event.Error); e.Code != event.CodeBusy || e.RetryAfterMs <= 0 {
		t.Fatalf("queued turn: %+v", e)
	}
	gate.Finish()
	s.until(t, doneOf(1))
}

// Past the slots and the queue, a response is refused at once, before
// anything is stored; a refused turn gives its place back.
func TestBusyAtAdmission(t *testing.T) {
	gate := fakes.NewGate()
	r := newRig(t, redistest.Start(t).Client(), gate, turn.Config{Slots: 1, Queue: 1})
	id, _ := r.session()
	ctx := context.Background()
	for _, text := range []string{"runs", "waits"} {
		if _, err := r.eng.Submit(ctx, id, text, event.SourceText); err != nil {
			t.Fatal(err)
		}
	}
	<-gate.Started
	for _, try := range []func() (int64, error){
		func() (int64, error) { return r.eng.Submit(ctx, id, "refused", event.SourceText) },
		func() (int64, error) { return r.eng.CreateResponse(ctx, id, turn.ResponseOptions{}) },
	} {
		var te *turn.TurnError
		if _, err := try(); !errors.As(err, &te) || te.Code != event.CodeBusy || te.Turn != 0 {
			t.Fatalf("over the queue: %v", err)
		}
	}
	stored, _ := r.store.Range(ctx, id, "", 100)
	if len(stored) != 2 {
		t.Fatalf("%d events stored; the refused turns must not be", len(stored))
	}
	gate.Finish()
}

func TestRateLimited(t *testing.T) {
	r := newRig(t, redistest.Start(t).Client(), &fakes.Echo{}, turn.Config{SessionRate: ratelimit.Rule{Rate: 1, Burst: 1}})
	id, s := r.session()
	ctx := context.Background()
	if _, err := r.eng.Submit(ctx, id, "one", event.SourceText); err != nil {
		t.Fatal(err)
	}
	s.until(t, doneOf(1))
	var te *turn.TurnError
	if _, err := r.eng.Submit(ctx, id, "two", event.SourceText); !errors.As(err, &te) || te.Code != event.CodeRateLimited || te.RetryAfter <= 0 {
		t.Fatalf("second turn within the second: %v", err)
	}
}

// countingLimiter counts the questions a real limiter is asked.
type countingLimiter struct {
	turn.Limiter
	asked atomic.Int64
}

func (c *countingLimiter) Allow(ctx context.Context, key string, r ratelimit.Rule) (ratelimit.Result, error) {
	c.asked.Add(1)
	return c.Limiter.Allow(ctx, key, r)
}

// A session Redis refused is refused again without asking Redis until its
// next token is due, with the time still to wait; then Redis is asked.
// The same for the global bucket, for every session.
func TestRateLimitedLocallyUntilTheNextToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  turn.Config
	}{
		{"session", turn.Config{SessionRate: ratelimit.Rule{Rate: 0.5, Burst: 1}}},
		{"global", turn.Config{GlobalRate: ratelimit.Rule{Rate: 0.5, Burst: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Start(t).Client()
			lim := &countingLimiter{Limiter: ratelimit.New(rdb, ratelimit.Config{})}
			r := newRigWith(t, rdb, &fakes.Echo{}, tc.cfg, lim)
			id, s := r.session()
			ctx := context.Background()
			if _, err := r.eng.Submit(ctx, id, "one", event.SourceText); err != nil {
				t.Fatal(err)
			}
			s.until(t, doneOf(1))
			var te *turn.TurnError
			if _, err := r.eng.Submit(ctx, id, "two", event.SourceText); !errors.As(err, &te) || te.Code != event.CodeRateLimited {
				t.Fatalf("second turn: %v", err)
			}
			first, asked := te.RetryAfter, lim.asked.Load()
			r.clk.Advance(first / 2)
			other := id
			if tc.name == "global" {
				other, _ = r.session() // another session shares the global bucket
			}
			for i := 0; i < 5; i++ {
				if _, err := r.eng.Submit(ctx, other, "again", event.SourceText); !errors.As(err, &te) || te.Code != event.CodeRateLimited {
					t.Fatalf("turn %d while held off: %v", i, err)
				}
			}
			if n := lim.asked.Load(); n != asked {
				t.Fatalf("Redis was asked %d more times while the bucket was known empty", n-asked)
			}
			if te.RetryAfter > first-first/2+time.Millisecond || te.RetryAfter <= 0 {
				t.Fatalf("retry after %v, want what is left of %v", te.RetryAfter, first)
			}
			r.clk.Advance(first)
			_, _ = r.eng.Submit(ctx, other, "later", event.SourceText)
			if lim.asked.Load() == asked {
				t.Fatal("Redis not asked once the next token was due")
			}
		})
	}
}

// A spoken turn's reply goes to the call whole (written) and is stored
// only when the call says what was heard; unreported, it is finished in
// full after HoldMax.
func TestSpokenTurnsAreHeldForTheCall(t *testing.T) {
	r := newRig(t, redistest.Start(t).Client(), &fakes.Echo{}, turn.Config{HoldMax: time.Minute})
	ctx := context.Background()
	written := make(chan string, 4)
	spoken := func(turn int64, reply string) { written <- reply }

	t.Run("cut by the caller", func(t *testing.T) {
		id, s := r.session()
		n, err := r.eng.SubmitSpoken(ctx, id, "tell me more", event.SourceVoice, spoken)
		if err != nil {
			t.Fatal(err)
		}
		if got := <-written; got != "echo: tell me more" {
			t.Fatalf("written %q", got)
		}
		r.eng.FinishSpoken(ctx, id, n, "echo: tell", true)
		evs := s.until(t, doneOf(n))
		if _, ok := evs[len(evs)-2].(event.Interrupted); !ok {
			t.Fatalf("interrupted must come before reply.done: %+v", evs)
		}
		if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "echo: tell" || !d.Interrupted {
			t.Fatalf("reply.done %+v: want what was heard", d)
		}
	})
	t.Run("never reported", func(t *testing.T) {
		id, s := r.session()
		n, err := r.eng.SubmitSpoken(ctx, id, "and then", event.SourceVoice, spoken)
		if err != nil {
			t.Fatal(err)
		}
		<-written
		for r.clk.Timers() == 0 { // the hold's timeout is set after written
			time.Sleep(time.Millisecond)
		}
		r.clk.Advance(time.Minute)
		evs := s.until(t, doneOf(n))
		if d := evs[len(evs)-1].(event.ReplyDone); d.Text != "echo: and then" || d.Interrupted {
			t.Fatalf("reply.done %+v: want the whole reply", d)
		}
	})
}

func TestNoSession(t *testing.T) {
	r := newRig(t, redistest.Start(t).Client(), &fakes.Echo{}, turn.Config{})
	ctx := context.Background()
	const gone = "0123456789abcdef0123456789abcdef"
	var te *turn.TurnError
	if _, err := r.eng.Submit(ctx, gone, "hi", event.SourceText); !errors.As(err, &te) || te.Code != event.CodeSessionExpired {
		t.Fatalf("Submit: %v", err)
	}
	if _, err := r.eng.AppendItem(ctx, gone, "hi", event.SourceText); !errors.As(err, &te) || te.Code != event.CodeSessionExpired {
		t.Fatalf("AppendItem: %v", err)
	}
	if _, err := r.eng.CreateResponse(ctx, gone, turn.ResponseOptions{}); !errors.As(err, &te) || te.Code != event.CodeSessionExpired {
		t.Fatalf("CreateResponse: %v", err)
	}
}

// A Redis that stops answering ends an admitted turn with an error, not a
// hang, and once it answers again so do turns. What bounds the wait is the
// Redis client's read timeout and retries (the autopipeliner, as the
// server wires it, waits for a reply whatever the context says): the read
// timeout is cut here from go-redis's 5 s, with which the four attempts
// would take over 20 s (that the server's clients keep those defaults is
// TestRedisClientsWaitOnGoRedisDefaults, in cmd/parley).
func TestStalledRedisFailsTheTurn(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 300 * time.Millisecond})
	defer rdb.Close()
	ap, err := rdb.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	r := newRigOn(t, rdb, ap, &fakes.Echo{}, turn.Config{}, ratelimit.New(ap, ratelimit.Config{}))
	id, s := r.session()
	submit(t, r, id, "before")
	s.until(t, doneOf(1))

	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 20 * time.Second})
	defer admin.Close()
	// Every client's commands wait until the pause ends: longer than the
	// attempts take.
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", 6000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := r.eng.Submit(context.Background(), id, "during", event.SourceText)
		got <- err
	}()
	select {
	case err := <-got:
		var te *turn.TurnError
		if !errors.As(err, &te) || te.Code != turn.CodeInternal {
			t.Fatalf("Submit while Redis is paused: %v, want a TurnError %q", err, turn.CodeInternal)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Submit still waiting on a paused Redis")
	}
	if err := admin.Ping(context.Background()).Err(); err != nil { // answered once the pause ends
		t.Fatal(err)
	}
	turnNo, err := r.eng.Submit(context.Background(), id, "after", event.SourceText)
	if err != nil {
		t.Fatalf("Submit once Redis answers again: %v", err)
	}
	s.until(t, doneOf(turnNo))
	// The refused turn left nothing behind: the turns are the two answered.
	hist, err := r.store.History(context.Background(), id, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := contentsOf(hist); got != "before|echo: before|after|echo: after" {
		t.Fatalf("history %q", got)
	}
}

func contentsOf(hist []session.Turn) string {
	var b []string
	for _, h := range hist {
		b = append(b, h.Content)
	}
	return strings.Join(b, "|")
}

// A call stored though every try of the Redis client lost its reply is
// taken for what it did: the engine sends it again as the same call,
// which is answered as the run that stored it. A reply delta is sent
// again at the next flush, before the rest of the reply, and is stored
// once; a turn's failure, retried at once (durably), is answered as
// stored, so that the client is told. The client here has no retries of
// its own, so that the engine's are what send again, as when all of
// go-redis's fail.
func TestCallStoredOnceWhenEveryTryLosesItsReply(t *testing.T) {
	for _, lose := range []string{"delta", "fail"} {
		t.Run(lose, func(t *testing.T) {
			srv := redistest.Start(t)
			direct := srv.Client()
			link := redistest.NewLossyLink(t, srv.Addr)
			rdb := redis.NewClient(&redis.Options{Addr: link.Addr, MaxRetries: -1})
			defer rdb.Close()
			gate := fakes.NewGate()
			r := newRigOn(t, direct, rdb, gate, turn.Config{}, ratelimit.New(rdb, ratelimit.Config{}))
			t.Cleanup(func() { r.clk.Advance(time.Hour) })             // a retry still waiting gives up, and the rig stops
			if err := r.store.Load(context.Background()); err != nil { // no NOSCRIPT round trip to lose
				t.Fatal(err)
			}
			id, s := r.session()
			submit(t, r, id, "hello")
			<-gate.Started
			link.DropNextReply()
			if lose == "fail" {
				gate.FinishWith(errors.New("the upstream broke off"))
				ev := untilAdvancing(t, r, s, func(ev event.Event) bool { _, ok := ev.(event.Error); return ok })
				if e := ev.(event.Error); e.Turn != 1 || string(e.Code) != string(turn.CodeUpstream) {
					t.Fatalf("error %+v, want turn 1's %q", e, turn.CodeUpstream)
				}
				return
			}
			scripts := func() int { return redistest.Calls(t, direct, "evalsha", "eval") }
			before := scripts()
			timers := r.clk.Timers()
			gate.Send("Hi")
			for r.clk.Timers() == timers { // the first piece's timer
				time.Sleep(time.Millisecond)
			}
			r.clk.Advance(2 * time.Millisecond) // its delta, whose reply is lost
			for scripts() == before {
				time.Sleep(time.Millisecond)
			}
			gate.Send(" there.")
			gate.Finish()
			untilAdvancing(t, r, s, doneOf(1))
			var deltas string
			for _, ev := range logOf(t, r, id) {
				if d, ok := ev.(event.ReplyDelta); ok {
					deltas += d.Text
				}
			}
			if deltas != "Hi there." {
				t.Fatalf("the log's deltas say %q, want %q", deltas, "Hi there.")
			}
		})
	}
}

// untilAdvancing is s.until with the rig's clock moving on meanwhile,
// for the engine's retries; it returns the event done accepted.
func untilAdvancing(t *testing.T, r *rig, s *sink, done func(event.Event) bool) event.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if done(ev) {
				return ev
			}
		case <-time.After(10 * time.Millisecond):
			r.clk.Advance(100 * time.Millisecond)
		case <-timeout:
			t.Fatal("no such event")
		}
	}
}

// logOf is the session's log, decoded.
func logOf(t *testing.T, r *rig, id string) []event.Event {
	t.Helper()
	stored, err := r.store.Range(context.Background(), id, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for _, s := range stored {
		if _, ev, err := event.Decode(s.Wire); err == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}
