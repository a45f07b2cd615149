package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
)

func TestCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := session.NewStore(rdb, session.Config{})
	id, token, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !session.ValidID(id) || len(token) < 40 {
		t.Fatalf("id %q token %q: want 32 hex digits and a long token", id, token)
	}
	id2, token2, _ := s.Create(ctx)
	if id == id2 || token == token2 {
		t.Fatal("two sessions share an id or token")
	}
	// Only the hash of the token is stored.
	vals, _ := rdb.HGetAll(ctx, "parley:{"+id+"}:meta").Result()
	for k, v := range vals {
		if v == token {
			t.Fatalf("field %s stores the token in clear", k)
		}
	}
	tests := []struct {
		name      string
		id, token string
		want      error
	}{
		{"right token", id, token, nil},
		{"wrong token", id, token2, session.ErrBadToken},
		{"empty token", id, "", session.ErrBadToken},
		{"unknown session", "0123456789abcdef0123456789abcdef", token, session.ErrNotFound},
		{"malformed id", "{evil}", token, session.ErrBadID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Authenticate(ctx, tc.id, tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAppendRangeAndRedeliveredTurn(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := session.NewStore(rdb, session.Config{TTL: time.Minute})
	id, _, _ := s.Create(ctx)

	turn, evID, err := s.AppendUserTurn(ctx, id, `say "hi"`, "text")
	if err != nil || turn != 1 {
		t.Fatalf("turn %d err %v", turn, err)
	}
	if st, takeover, err := s.StartTurn(ctx, id, turn, "run-a"); err != nil || st != session.StartOK || takeover {
		t.Fatalf("start: %d %v %v", st, takeover, err)
	}
	if st, _ := s.AppendDelta(ctx, id, turn, "run-a", "Hi", false); st != session.Appended {
		t.Fatalf("delta: %v", st)
	}
	// A second run takes the turn over; the first is now stale.
	if _, takeover, _ := s.StartTurn(ctx, id, turn, "run-b"); !takeover {
		t.Fatal("second start must report a takeover")
	}
	if st, _ := s.AppendDelta(ctx, id, turn, "run-a", " there", false); st != session.Stale {
		t.Fatalf("stale run's delta: %v, want Stale", st)
	}
	if ok, _ := s.FinishTurn(ctx, id, turn, "run-a", "Hi there", false); ok {
		t.Fatal("a stale run finished the turn")
	}
	if ok, err := s.FinishTurn(ctx, id, turn, "run-b", "Hello!", false); !ok || err != nil {
		t.Fatalf("owner's finish: %v %v", ok, err)
	}
	// Redelivered: the turn is done, no second reply.
	if st, _, _ := s.StartTurn(ctx, id, turn, "run-c"); st != session.StartDone {
		t.Fatalf("start after done: %d, want StartDone", st)
	}
	if ok, _ := s.FinishTurn(ctx, id, turn, "run-b", "Hello again", false); ok {
		t.Fatal("a second reply.done was stored")
	}

	evs, err := s.Range(ctx, id, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		var m map[string]any
		if err := json.Unmarshal(ev.Wire, &m); err != nil {
			t.Fatalf("event %s is not JSON: %v", ev.Wire, err)
		}
		if m["id"] != ev.ID {
			t.Fatalf("wire id %v, entry id %s", m["id"], ev.ID)
		}
		types = append(types, m["type"].(string))
	}
	if want := []string{"transcript", "reply.delta", "reply.done"}; len(types) != 3 || types[0] != want[0] || types[1] != want[1] || types[2] != want[2] {
		t.Fatalf("log: %v, want %v", types, want)
	}
	after, _ := s.Range(ctx, id, evID, 100)
	if len(after) != 2 {
		t.Fatalf("range after the first event: %d events, want 2", len(after))
	}
	hist, _ := s.History(ctx, id, 10)
	if len(hist) != 2 || hist[0] != (session.Turn{Role: "user", Content: `say "hi"`, N: 1}) || hist[1] != (session.Turn{Role: "assistant", Content: "Hello!", N: 1}) {
		t.Fatalf("history: %+v", hist)
	}
}

func TestIdleSessionsExpire(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := session.NewStore(rdb, session.Config{TTL: 300 * time.Millisecond})
	id, token, _ := s.Create(ctx)
	if _, _, err := s.AppendUserTurn(ctx, id, "hello", "text"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"log", "hist", "meta"} {
		ttl, _ := rdb.PTTL(ctx, "parley:{"+id+"}:"+k).Result()
		if ttl <= 0 || ttl > 300*time.Millisecond*9/8 {
			t.Fatalf("%s TTL %v, want in (0, 9/8 of 300ms]", k, ttl)
		}
	}
	// Poll without touching: Authenticate would refresh the expiry.
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Exists(ctx, "parley:{"+id+"}:meta").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("session still there after its TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Authenticate(ctx, id, token); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("authenticate an expired session: %v, want ErrNotFound", err)
	}
	if _, _, err := s.AppendUserTurn(ctx, id, "anyone?", "text"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("append to an expired session: %v, want ErrNotFound", err)
	}
}

// A user turn refreshes the session's expiry only when the last refresh is
// older than an eighth of the TTL, and then to 9/8 of it: the session
// still lives at least TTL after its last turn, and most turns pay no
// PEXPIRE. The TTL is long, so that the turns of this test come well
// within an eighth of it on a loaded machine; an older refresh is made by
// moving its time (xp) back.
func TestTurnsRefreshExpiryNowAndThen(t *testing.T) {
	for _, started := range []bool{false, true} {
		t.Run(fmt.Sprintf("started=%v", started), func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client()
			const ttl = 8 * time.Second
			s := session.NewStore(rdb, session.Config{TTL: ttl})
			id, _, _ := s.Create(ctx)
			meta := "parley:{" + id + "}:meta"
			turn := func(text string) {
				t.Helper()
				var err error
				if started {
					_, _, err = s.AppendUserTurnStarted(ctx, id, text, "text", "run-"+text, 20, session.JobField{})
				} else {
					_, _, err = s.AppendUserTurn(ctx, id, text, "text")
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			turn("first")
			after1 := redistest.Calls(t, rdb, "pexpire")
			for _, k := range []string{"log", "hist", "meta"} {
				if ttl1, _ := rdb.PTTL(ctx, "parley:{"+id+"}:"+k).Result(); ttl1 <= ttl || ttl1 > ttl*9/8 {
					t.Fatalf("%s TTL %v after the first turn, want in (%v, %v]", k, ttl1, ttl, ttl*9/8)
				}
			}
			turn("second") // within an eighth of the TTL: no refresh
			if n := redistest.Calls(t, rdb, "pexpire") - after1; n != 0 {
				t.Fatalf("%d PEXPIREs for a turn right after a refresh, want 0", n)
			}
			xp, err := rdb.HGet(ctx, meta, "xp").Int64()
			if err != nil {
				t.Fatalf("the refresh's time: %v", err)
			}
			rdb.HSet(ctx, meta, "xp", xp-ttl.Milliseconds()/8)
			rdb.PExpire(ctx, "parley:{"+id+"}:hist", ttl/2) // as if time had passed
			before3 := redistest.Calls(t, rdb, "pexpire")
			turn("third")
			if n := redistest.Calls(t, rdb, "pexpire") - before3; n != 3 {
				t.Fatalf("%d PEXPIREs for a turn an eighth of the TTL after a refresh, want 3", n)
			}
			if ttl3, _ := rdb.PTTL(ctx, "parley:{"+id+"}:hist").Result(); ttl3 <= ttl {
				t.Fatalf("hist TTL %v after the refresh, want over %v", ttl3, ttl)
			}
		})
	}
}

func TestCompareIDs(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0}, {"1-1", "1-0", 1}, {"9-0", "10-0", -1}, {"10-5", "9-9", 1}, {"0", "1-0", -1},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			if got := session.CompareIDs(tc.a, tc.b); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// Turns of one session finish out of order; each still gets its reply,
// once, and the done markers are compacted into the watermark. An
// in-order finish looks for markers above it only when some turn above
// was ever marked (the meta hash's dm), so a session whose turns finish
// in order makes no HEXISTS; a session from before dm was kept still
// looks every time.
func TestTurnsFinishOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		order    []int64
		legacy   bool // the session has no dm (created before it was kept)
		hexists0 bool // no marker lookup at all
	}{
		{"in order", []int64{1, 2, 3}, false, true},
		{"the last first", []int64{3, 1, 2}, false, false},
		{"the middle first", []int64{2, 1, 3}, false, false},
		{"in order, a session from before dm", []int64{1, 2, 3}, true, false},
		{"the last first, a session from before dm", []int64{3, 1, 2}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client()
			s := session.NewStore(rdb, session.Config{})
			id, _, _ := s.Create(ctx)
			meta := "parley:{" + id + "}:meta"
			if tc.legacy {
				rdb.HDel(ctx, meta, "dm")
			}
			for range tc.order {
				if _, _, err := s.AppendUserTurn(ctx, id, "q", "text"); err != nil {
					t.Fatal(err)
				}
			}
			before := redistest.Calls(t, rdb, "hexists")
			for _, turn := range tc.order {
				run := "run-" + string(rune('0'+turn))
				if st, _, _ := s.StartTurn(ctx, id, turn, run); st != session.StartOK {
					t.Fatalf("turn %d: start %d", turn, st)
				}
				if ok, err := s.FinishTurn(ctx, id, turn, run, "a", false); !ok || err != nil {
					t.Fatalf("turn %d finished: %v %v", turn, ok, err)
				}
			}
			if n := redistest.Calls(t, rdb, "hexists") - before; tc.hexists0 != (n == 0) {
				t.Errorf("%d marker lookups (HEXISTS) in the finishes", n)
			}
			for _, turn := range []int64{1, 2, 3} {
				if st, _, _ := s.StartTurn(ctx, id, turn, "again"); st != session.StartDone {
					t.Fatalf("turn %d: a redelivery must see it done, got %d", turn, st)
				}
			}
			m, _ := rdb.HGetAll(ctx, meta).Result()
			if m["replied"] != "3" || m["d:1"] != "" || m["d:2"] != "" || m["d:3"] != "" {
				t.Fatalf("meta: %v", m)
			}
		})
	}
}

func TestStartReadsHistoryAndSettings(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := session.NewStore(rdb, session.Config{})
	id, _, _ := s.Create(ctx)
	for i, text := range []string{"one", "two"} {
		turn, _, _ := s.AppendUserTurn(ctx, id, text, "text")
		run := "r" + text
		if st, err := s.Start(ctx, id, turn, run, 10, ""); err != nil || st.Status != session.StartOK || len(st.History) != 2*i+1 {
			t.Fatalf("turn %d: %+v, err %v", turn, st, err)
		}
		if ok, err := s.FinishTurn(ctx, id, turn, run, "re "+text, false); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	set := session.Settings{Instructions: "Speak like a pirate.", Voice: "slt", TurnDetection: &session.TurnDetection{Mode: "manual"}}
	if err := s.SetSettings(ctx, id, set); err != nil {
		t.Fatal(err)
	}
	turn, _, _ := s.AppendUserTurn(ctx, id, "three", "text")
	st, err := s.Start(ctx, id, turn, "r3", 3, "")
	// The newest three entries, the turn just stored among them, oldest first.
	want := []session.Turn{{Role: "user", Content: "two", N: 2}, {Role: "assistant", Content: "re two", N: 2}, {Role: "user", Content: "three", N: 3}}
	if err != nil || fmt.Sprint(st.History) != fmt.Sprint(want) {
		t.Fatalf("history %+v (%v), want %+v", st.History, err, want)
	}
	if !reflect.DeepEqual(st.Settings, set) {
		t.Fatalf("settings %+v, want %+v", st.Settings, set)
	}
	if got, err := s.Settings(ctx, id); err != nil || !reflect.DeepEqual(got, set) {
		t.Fatalf("Settings: %+v %v", got, err)
	}
	if st, _ := s.Start(ctx, id, 1, "again", 10, ""); st.Status != session.StartDone || st.History != nil {
		t.Fatalf("a finished turn started again: %+v", st)
	}
	if err := s.SetSettings(ctx, "0123456789abcdef0123456789abcdef", set); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("settings of no session: %v", err)
	}
}

// Items appended without a response share the turn that a later Respond
// takes; a Respond with nothing new takes a turn of its own.
func TestItemsAndResponses(t *testing.T) {
	ctx := context.Background()
	s := session.NewStore(redistest.Start(t).Client(), session.Config{MaxTurns: 4})
	id, _, _ := s.Create(ctx)
	for i, step := range []struct {
		do   func() (int64, error)
		want int64
	}{
		{func() (int64, error) { n, _, err := s.AppendItem(ctx, id, "a", "text"); return n, err }, 1},
		{func() (int64, error) { n, _, err := s.AppendItem(ctx, id, "b", "text"); return n, err }, 2},
		{func() (int64, error) { return s.Respond(ctx, id) }, 2}, // the latest item's turn
		{func() (int64, error) { return s.Respond(ctx, id) }, 3}, // nothing new: a turn of its own
		{func() (int64, error) { n, _, err := s.AppendUserTurn(ctx, id, "c", "text"); return n, err }, 4},
		{func() (int64, error) { return s.Respond(ctx, id) }, -1}, // the fifth turn: over MaxTurns
	} {
		n, err := step.do()
		if step.want < 0 {
			if !errors.Is(err, session.ErrTurnLimit) {
				t.Fatalf("step %d: %d %v, want ErrTurnLimit", i, n, err)
			}
			continue
		}
		if err != nil || n != step.want {
			t.Fatalf("step %d: turn %d %v, want %d", i, n, err, step.want)
		}
	}
	hist, _ := s.History(ctx, id, 10)
	if len(hist) != 3 || hist[0].N != 1 || hist[1].N != 2 || hist[2].N != 4 {
		t.Fatalf("history %+v", hist)
	}
	if _, err := s.Respond(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("respond in no session: %v", err)
	}
}

// FinishReply stores the tail as a last delta, or, when the turn was cut
// before the tail was stored, only what the client was sent.
func TestFinishReplyTail(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := session.NewStore(rdb, session.Config{})
	tests := []struct {
		name     string
		cut      bool
		want     session.FinishStatus
		types    []string
		stored   string
		doneText string
	}{
		{"tail stored", false, session.Finished, []string{"transcript", "reply.delta", "reply.delta", "reply.done"}, "Hello there.", "Hello there."},
		{"cut before the tail", true, session.FinishedCut, []string{"transcript", "reply.delta", "interrupted", "reply.done"}, "Hello", "Hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, _, _ := s.Create(ctx)
			turn, _, _ := s.AppendUserTurn(ctx, id, "hi", "text")
			if st, _, _ := s.StartTurn(ctx, id, turn, "run"); st != session.StartOK {
				t.Fatal(st)
			}
			if st, err := s.AppendDelta(ctx, id, turn, "run", "Hello", false); st != session.Appended || err != nil {
				t.Fatal(st, err)
			}
			if tc.cut {
				if _, err := s.Cut(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			rdb.HSet(ctx, "jobs-"+id, "1-1", "job", "1-2", "another")
			st, err := s.FinishReply(ctx, id, session.Finish{Turn: turn, Run: "run", Text: "Hello there.", Tail: " there.",
				Job: session.JobField{Key: "jobs-" + id, Field: "1-1"}})
			if err != nil || st != tc.want {
				t.Fatalf("status %d, err %v; want %d", st, err, tc.want)
			}
			if left, _ := rdb.HKeys(ctx, "jobs-"+id).Result(); fmt.Sprint(left) != "[1-2]" {
				t.Fatalf("jobs left %v: the finish deletes its own, and only it", left)
			}
			evs, _ := s.Range(ctx, id, "", 100)
			var types []string
			var last map[string]any
			for _, ev := range evs {
				last = nil
				_ = json.Unmarshal(ev.Wire, &last)
				types = append(types, last["type"].(string))
			}
			if fmt.Sprint(types) != fmt.Sprint(tc.types) || last["text"] != tc.doneText {
				t.Fatalf("log %v, last %v; want %v ending in %q", types, last, tc.types, tc.doneText)
			}
			hist, _ := s.History(ctx, id, 10)
			if len(hist) != 2 || hist[1].Content != tc.stored {
				t.Fatalf("history %+v, want the reply %q", hist, tc.stored)
			}
			if st, _ := s.FinishReply(ctx, id, session.Finish{Turn: turn, Run: "run", Text: "again"}); st != session.FinishNone {
				t.Fatal("a second finish was applied")
			}
		})
	}
}

func TestTurnLimit(t *testing.T) {
	ctx := context.Background()
	s := session.NewStore(redistest.Start(t).Client(), session.Config{MaxTurns: 2})
	id, _, _ := s.Create(ctx)
	for i := 1; i <= 2; i++ {
		if turn, _, err := s.AppendUserTurn(ctx, id, "hi", "text"); err != nil || turn != int64(i) {
			t.Fatalf("turn %d: %d %v", i, turn, err)
		}
	}
	if _, _, err := s.AppendUserTurn(ctx, id, "hi", "text"); !errors.Is(err, session.ErrTurnLimit) {
		t.Fatalf("third turn: %v, want ErrTurnLimit", err)
	}
	if _, _, err := s.AppendUserTurn(ctx, "0123456789abcdef0123456789abcdef", "hi", "text"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if evs, _ := s.Range(ctx, id, "", 100); len(evs) != 2 {
		t.Fatalf("%d events stored, want the 2 turns only", len(evs))
	}
}

// A front end's metadata is kept with the session and read back; an
// event of no turn (a key press) is appended to the log, published, and
// read back in order with the rest. Neither may create a session.
func TestMetadataAndAppendEvent(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := session.NewStore(rdb, session.Config{})
	id, _, _ := s.Create(ctx)
	if md, err := s.Metadata(ctx, id); err != nil || md != nil {
		t.Fatalf("metadata before any: %v %v", md, err)
	}
	md := map[string]string{"twilio.call_sid": "CA123", "twilio.param.From": `+1 "555"`}
	if err := s.SetMetadata(ctx, id, md); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Metadata(ctx, id); err != nil || !reflect.DeepEqual(got, md) {
		t.Fatalf("metadata %v %v, want %v", got, err, md)
	}

	// Another replica follows the session: the events are published.
	there := newSink()
	if _, err := runHub(t, rdb, session.NewStore(rdb, session.Config{})).Follow(ctx, id, there); err != nil {
		t.Fatal(err)
	}
	turn, _, _ := s.AppendUserTurn(ctx, id, "The caller pressed 5.", "text")
	eid, err := s.AppendEvent(ctx, id, event.DTMF{Turn: turn, Digit: "5"})
	if err != nil || !session.ValidEventID(eid) {
		t.Fatalf("append: %q %v", eid, err)
	}
	evs, err := s.Range(ctx, id, "", 10)
	if err != nil || len(evs) != 2 || evs[1].ID != eid {
		t.Fatalf("range: %+v %v", evs, err)
	}
	want := `{"id":"` + eid + `","type":"dtmf","turn":1,"digit":"5"}`
	if string(evs[1].Wire) != want {
		t.Fatalf("stored %s, want %s", evs[1].Wire, want)
	}
	there.waitFor(t, "The caller pressed 5.")
	for {
		if got, prevs := there.delivered(); len(got) == 2 {
			if got[1] != want || prevs[1] != evs[0].ID {
				t.Fatalf("published %s after %s, want %s after %s", got[1], prevs[1], want, evs[0].ID)
			}
			break
		}
		<-there.got
	}
	if ttl := rdb.PTTL(ctx, "parley:{"+id+"}:log").Val(); ttl <= 0 {
		t.Fatalf("the log has no expiry: %v", ttl)
	}

	none := "0123456789abcdef0123456789abcdef"
	if err := s.SetMetadata(ctx, none, md); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("metadata of no session: %v", err)
	}
	if _, err := s.AppendEvent(ctx, none, event.DTMF{Digit: "1"}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("an event of no session: %v", err)
	}
	if n := rdb.Exists(ctx, "parley:{"+none+"}:log", "parley:{"+none+"}:meta").Val(); n != 0 {
		t.Fatalf("%d keys made for no session", n)
	}
}

// A history entry edited (a reply cut to what was heard) or deleted (an
// item the client removed) changes what History returns; the edit keeps
// its turn.
func TestEditHistory(t *testing.T) {
	ctx := context.Background()
	s := session.NewStore(redistest.Start(t).Client(), session.Config{})
	id, _, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AppendUserTurn(ctx, id, "hello", "text"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.StartTurn(ctx, id, 1, "r1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FinishTurn(ctx, id, 1, "r1", "Hello there, how are you today?", false); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	entries, err := s.HistoryEntries(ctx, id)
	if err != nil || len(entries) != 2 || entries[1].Role != "assistant" {
		t.Fatalf("entries %+v, %v", entries, err)
	}
	cut := entries[1].Turn
	cut.Content = "Hello there,"
	if err := s.EditHistory(ctx, id, entries[1].ID, &cut); err != nil {
		t.Fatal(err)
	}
	if err := s.EditHistory(ctx, id, entries[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	hist, err := s.History(ctx, id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []session.Turn{{Role: "assistant", Content: "Hello there,", N: 1}}; !reflect.DeepEqual(hist, want) {
		t.Fatalf("history %+v, want %+v", hist, want)
	}
	if err := s.EditHistory(ctx, "0123456789abcdef0123456789abcdef", entries[1].ID, nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("edit in a session that does not exist: %v", err)
	}
}

// lossy is a Store whose link to Redis can lose a reply, with go-redis's
// default retries, a session on it, and a client of the Redis itself.
type lossy struct {
	s      *session.Store
	direct *redis.Client
	link   *redistest.LossyLink
	id     string
}

func newLossy(t *testing.T) *lossy {
	t.Helper()
	srv, link, rdb := redistest.StartLossy(t)
	l := &lossy{s: session.NewStore(rdb, session.Config{}), direct: srv.Client(), link: link}
	if err := l.s.Load(context.Background()); err != nil { // as the server at its start: no NOSCRIPT
		t.Fatal(err)
	}
	var err error
	if l.id, _, err = l.s.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// A user turn is stored once even when Redis's reply to its script is
// lost and the Redis client sends the script again (go-redis retries a
// pipeline whose connection failed): the second run finds that its call
// already stored the turn and answers as the first would have.
func TestUserTurnStoredOnceWhenItsReplyIsLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(ctx context.Context, s *session.Store, id string) (int64, error)
	}{
		{"queued", func(ctx context.Context, s *session.Store, id string) (int64, error) {
			turn, _, err := s.AppendUserTurn(ctx, id, "hello", event.SourceText)
			return turn, err
		}},
		{"started at once", func(ctx context.Context, s *session.Store, id string) (int64, error) {
			turn, _, err := s.AppendUserTurnStarted(ctx, id, "hello", event.SourceText, "run-1", 10, session.JobField{})
			return turn, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := newLossy(t)
			if _, err := tc.store(ctx, l.s, l.id); err != nil { // the connection made, the script loaded
				t.Fatal(err)
			}
			var turn int64
			l.link.LoseScriptReply(t, l.direct, func() {
				var err error
				if turn, err = tc.store(ctx, l.s, l.id); err != nil {
					t.Fatal(err)
				}
			})
			if turn != 2 {
				t.Errorf("turn %d, want 2", turn)
			}
			hist, err := session.NewStore(l.direct, session.Config{}).History(ctx, l.id, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 2 || hist[1].N != 2 {
				t.Fatalf("history %+v, want turns 1 and 2 once each", hist)
			}
			evs, err := l.direct.XRange(ctx, "parley:{"+l.id+"}:log", "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 {
				t.Fatalf("%d events in the log, want 2 transcripts: %+v", len(evs), evs)
			}
		})
	}
}

// A reply delta is stored once when the reply to its script is lost and
// the Redis client sends it again, as a user turn is above.
func TestDeltaStoredOnceWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	turn, _, err := l.s.AppendUserTurnStarted(ctx, l.id, "hello", event.SourceText, "run-1", 10, session.JobField{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := l.s.AppendDelta(ctx, l.id, turn, "run-1", "Hi", false); err != nil || st != session.Appended {
		t.Fatalf("first delta: %v, %v", st, err)
	}
	l.link.LoseScriptReply(t, l.direct, func() {
		if st, err := l.s.AppendDelta(ctx, l.id, turn, "run-1", " there", false); err != nil || st != session.Appended {
			t.Fatalf("delta whose reply is lost: %v, %v", st, err)
		}
	})
	evs, err := l.direct.XRange(ctx, "parley:{"+l.id+"}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range evs {
		if _, ev, err := event.Decode([]byte(e.Values["e"].(string))); err == nil {
			if d, ok := ev.(event.ReplyDelta); ok {
				texts = append(texts, d.Text)
			}
		}
	}
	if !reflect.DeepEqual(texts, []string{"Hi", " there"}) {
		t.Fatalf("deltas in the log %q, want each once", texts)
	}
}

// Another event (a key the caller pressed) is stored once when the reply
// to its script is lost and the Redis client sends it again.
func TestEventStoredOnceWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	var id string
	l.link.LoseScriptReply(t, l.direct, func() {
		var err error
		if id, err = l.s.AppendEvent(ctx, l.id, event.DTMF{Digit: "5"}); err != nil {
			t.Fatal(err)
		}
	})
	evs, err := l.direct.XRange(ctx, "parley:{"+l.id+"}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].ID != id {
		t.Fatalf("log %+v, want the one event %s", evs, id)
	}
}

// A turn failed (the model's error) whose reply is lost still says that
// it failed it, so that the client is told.
func TestFailAnswersAsItsFirstRunWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	turn, _, err := l.s.AppendUserTurnStarted(ctx, l.id, "hello", event.SourceText, "run-1", 10, session.JobField{})
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	l.link.LoseScriptReply(t, l.direct, func() {
		if ok, err = l.s.FailTurn(ctx, l.id, turn, "run-1"); err != nil {
			t.Fatal(err)
		}
	})
	if !ok {
		t.Fatal("FailTurn whose reply was lost: false, want true (the turn is this run's to fail)")
	}
	if ok, err := l.s.FailTurn(ctx, l.id, turn, "run-1"); err != nil || ok {
		t.Fatalf("a second call: %v, %v; want false (the turn is no longer the run's)", ok, err)
	}
}

// A tool step sent again after its reply was lost answers as its first
// run did, not as the step of a turn another run took (which would end
// the turn there), and its call is stored once.
func TestToolStepAnswersAsItsFirstRunWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	turn, _, err := l.s.AppendUserTurnStarted(ctx, l.id, "what time is it", event.SourceText, "run-1", 10, session.JobField{})
	if err != nil {
		t.Fatal(err)
	}
	call := event.ToolCall{Turn: turn, CallID: "c1", Name: "clock", Arguments: "{}", By: event.ByClient}
	var st session.AppendStatus
	l.link.LoseScriptReply(t, l.direct, func() {
		if st, err = l.s.StoreToolStep(ctx, l.id, session.ToolStep{
			Turn: turn, Run: "run-1", Calls: `[{"id":"c1","name":"clock","arguments":"{}"}]`, JobAt: "job-1",
			Events:  [][]byte{event.Marshal(call)},
			Pending: []session.PendingCall{{ID: "c1", Turn: turn, By: "client", Name: "clock", Arguments: "{}"}},
		}); err != nil {
			t.Fatal(err)
		}
	})
	if st != session.Appended {
		t.Fatalf("tool step whose reply was lost: %v, want Appended", st)
	}
	evs, err := l.direct.XRange(ctx, "parley:{"+l.id+"}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("log %+v, want the transcript and one tool.call", evs)
	}
}

// A tool's result sent again after its reply was lost answers as its
// first run did, not as a result no call waits for, and is stored once.
func TestToolResultAnswersAsItsFirstRunWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	turn, _, err := l.s.AppendUserTurnStarted(ctx, l.id, "what time is it", event.SourceText, "run-1", 10, session.JobField{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := l.s.StoreToolStep(ctx, l.id, session.ToolStep{
		Turn: turn, Run: "run-1", Calls: `[{"id":"c1","name":"clock","arguments":"{}"}]`, JobAt: "job-1",
		Pending: []session.PendingCall{{ID: "c1", Turn: turn, By: "client", Name: "clock", Arguments: "{}"}},
	}); err != nil || st != session.Appended {
		t.Fatalf("tool step: %v, %v", st, err)
	}
	var status int
	var jobAt string
	l.link.LoseScriptReply(t, l.direct, func() {
		if status, _, jobAt, err = l.s.StoreToolResult(ctx, l.id, "c1", "noon", "client", nil); err != nil {
			t.Fatal(err)
		}
	})
	if status != session.ResultLast || jobAt != "job-1" {
		t.Fatalf("result whose reply was lost: status %d, job %q; want %d, job-1", status, jobAt, session.ResultLast)
	}
	hist, err := session.NewStore(l.direct, session.Config{}).History(ctx, l.id, 100)
	if err != nil {
		t.Fatal(err)
	}
	results := 0
	for _, h := range hist {
		if h.Role == "tool" {
			results++
		}
	}
	if results != 1 {
		t.Fatalf("history %+v: %d tool results, want 1", hist, results)
	}
}

// A response takes one turn when the reply to its script is lost and the
// Redis client sends it again, as a user turn does above.
func TestResponseTakesOneTurnWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	if _, _, err := l.s.AppendItem(ctx, l.id, "hello", event.SourceText); err != nil {
		t.Fatal(err)
	}
	if turn, err := l.s.Respond(ctx, l.id); err != nil || turn != 1 {
		t.Fatalf("the item's response: turn %d, %v; want 1", turn, err)
	}
	l.link.LoseScriptReply(t, l.direct, func() {
		if turn, err := l.s.Respond(ctx, l.id); err != nil || turn != 2 {
			t.Fatalf("a response of its own, its reply lost: turn %d, %v; want 2", turn, err)
		}
	})
	if n, err := l.direct.HGet(ctx, "parley:{"+l.id+"}:meta", "turn").Int64(); err != nil || n != 2 {
		t.Fatalf("the session's latest turn %d (%v), want 2: one taken, not two", n, err)
	}
}

// A turn's finish sent again after its reply was lost answers with its
// first run's status, not as a duplicate: the caller's own sockets then
// read the log for the events, which the first run published only for
// the other replicas'. What the calls leave in the meta hash keeps it in
// Redis's compact form (values of 64 bytes at most).
func TestFinishAnswersAsItsFirstRunWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	l := newLossy(t)
	turn, _, err := l.s.AppendUserTurnStarted(ctx, l.id, "hello", event.SourceText, "run-1", 10, session.JobField{})
	if err != nil {
		t.Fatal(err)
	}
	var st session.FinishStatus
	l.link.LoseScriptReply(t, l.direct, func() {
		if st, err = l.s.FinishReply(ctx, l.id, session.Finish{Turn: turn, Run: "run-1", Text: "Hi there", Tail: "Hi there"}); err != nil {
			t.Fatal(err)
		}
	})
	if st != session.Finished {
		t.Fatalf("finish whose reply was lost: status %v, want Finished", st)
	}
	evs, err := l.direct.XRange(ctx, "parley:{"+l.id+"}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		if _, ev, err := event.Decode([]byte(e.Values["e"].(string))); err == nil {
			types = append(types, string(ev.Type()))
		}
	}
	if want := []string{"transcript", "reply.delta", "reply.done"}; !reflect.DeepEqual(types, want) {
		t.Fatalf("events %q, want %q", types, want)
	}
	if enc, err := l.direct.ObjectEncoding(ctx, "parley:{"+l.id+"}:meta").Result(); err != nil || enc != "listpack" {
		meta, _ := l.direct.HGetAll(ctx, "parley:{"+l.id+"}:meta").Result()
		t.Fatalf("the meta hash is stored as %q (%v), want listpack: %q", enc, err, meta)
	}
}

// A turn's job is stored with its turn and deleted with its finish,
// whatever the finish found; a turn refused stores none. On one Redis the
// scripts do it; in a cluster, where the job's hash is in another slot,
// the command goes beside them. Both through the plain client and the
// autopipeliner the server wires.
func TestJobStoredWithItsTurn(t *testing.T) {
	ctx := context.Background()
	one := redistest.Start(t).Client()
	cl := redistest.StartCluster(t, 3).Client()
	pipelined := func(c interface {
		AutoPipeline() (*redis.AutoPipeliner, error)
	}) redis.UniversalClient {
		ap, err := c.AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		return ap
	}
	tests := []struct {
		name string
		rdb  redis.UniversalClient
		cfg  session.Config
	}{
		{"one Redis", one, session.Config{Prefix: "one"}},
		{"one Redis, autopipelined", pipelined(one), session.Config{Prefix: "oneap"}},
		{"cluster", cl, session.Config{Prefix: "cl", Cluster: true, Sharded: true}},
		{"cluster, autopipelined", pipelined(cl), session.Config{Prefix: "clap", Cluster: true, Sharded: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := session.NewStore(tc.rdb, tc.cfg)
			jobs := tc.cfg.Prefix + ":jobq:{replica}" // not the session's slot
			id, _, err := s.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			job := session.JobField{Key: jobs, Field: "1-1", Value: `{"s":"` + id + `","r":"run-1"}`}
			turn, _, err := s.AppendUserTurnStarted(ctx, id, "hello", event.SourceText, "run-1", 10, job)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := tc.rdb.HGet(ctx, jobs, "1-1").Result(); err != nil || v != job.Value {
				t.Fatalf("job %q, %v; want %q", v, err, job.Value)
			}
			if got, ok, _ := s.TurnOfRun(ctx, id, "run-1"); !ok || got != turn {
				t.Fatalf("the job's run owns turn %d (%v), want %d", got, ok, turn)
			}

			refused := session.JobField{Key: jobs, Field: "1-2", Value: `{"s":"gone"}`}
			_, _, err = s.AppendUserTurnStarted(ctx, "0123456789abcdef0123456789abcdef", "hello", event.SourceText, "run-2", 10, refused)
			if !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("a turn of no session: %v", err)
			}
			if n, _ := tc.rdb.HExists(ctx, jobs, "1-2").Result(); n {
				t.Fatal("a turn refused left its job behind")
			}

			// Another run's finish stores nothing, and the job goes all the same.
			tc.rdb.HSet(ctx, jobs, "1-3", "x")
			st, err := s.FinishReply(ctx, id, session.Finish{Turn: turn, Run: "another", Text: "no", Job: session.JobField{Key: jobs, Field: "1-3"}})
			if err != nil || st != session.FinishNone {
				t.Fatalf("another run's finish: %d, %v", st, err)
			}
			st, err = s.FinishReply(ctx, id, session.Finish{Turn: turn, Run: "run-1", Text: "Hi.", Tail: "Hi.", Job: session.JobField{Key: jobs, Field: "1-1"}})
			if err != nil || st != session.Finished {
				t.Fatalf("finish: %d, %v", st, err)
			}
			if n, _ := tc.rdb.Exists(ctx, jobs).Result(); n != 0 {
				left, _ := tc.rdb.HKeys(ctx, jobs).Result()
				t.Fatalf("jobs left after their finishes: %v", left)
			}
		})
	}
}
