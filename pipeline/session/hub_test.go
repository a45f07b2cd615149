package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
)

// sink records what a Hub delivers.
type sink struct {
	mu      sync.Mutex
	events  []string // the wire forms delivered
	prevs   []string // with each, the id of the event before it
	resyncs int
	got     chan struct{}
}

func newSink() *sink { return &sink{got: make(chan struct{}, 64)} }

func (s *sink) Deliver(prev string, wire []byte) {
	s.mu.Lock()
	s.events = append(s.events, string(wire))
	s.prevs = append(s.prevs, prev)
	s.mu.Unlock()
	s.got <- struct{}{}
}

// delivered is what the sink has had so far.
func (s *sink) delivered() (events, prevs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events), slices.Clone(s.prevs)
}

func (s *sink) Resync() {
	s.mu.Lock()
	s.resyncs++
	s.mu.Unlock()
}

// has reports whether an event with this text was delivered.
func (s *sink) has(text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		var ev struct{ Text string }
		if json.Unmarshal([]byte(e), &ev) == nil && ev.Text == text {
			return true
		}
	}
	return false
}

func (s *sink) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			var ev struct{ Text string }
			if json.Unmarshal([]byte(e), &ev) == nil && ev.Text == text {
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("%q never delivered (got %v)", text, s.events)
		}
	}
}

func runHub(t *testing.T, rdb redis.UniversalClient, store *session.Store) *session.Hub {
	hub := session.NewHub(rdb, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return hub
}

// eachPubSub runs f with classic and with sharded Pub/Sub on one Redis,
// each with its own Redis, Store and running Hub.
func eachPubSub(t *testing.T, f func(t *testing.T, rdb *redis.Client, store *session.Store, hub *session.Hub, sharded bool)) {
	for _, sharded := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharded=%v", sharded), func(t *testing.T) {
			rdb := redistest.Start(t).Client()
			store := session.NewStore(rdb, session.Config{Sharded: sharded})
			f(t, rdb, store, runHub(t, rdb, store), sharded)
		})
	}
}

// Live delivery, with classic and with sharded Pub/Sub on one Redis, of
// events stored by this replica (handed over by its scripts' callers) and
// by another (published): each event appended reaches the session's
// sinks, and only theirs; a stopped sink gets nothing more.
func TestHubDelivers(t *testing.T) {
	eachPubSub(t, func(t *testing.T, rdb *redis.Client, own *session.Store, hub *session.Hub, sharded bool) {
		for _, replica := range []string{"this", "another"} {
			t.Run(replica+" replica stores", func(t *testing.T) {
				store := own
				if replica == "another" {
					store = session.NewStore(rdb, session.Config{Sharded: sharded})
				}
				hubDelivers(t, store, hub)
			})
		}
	})
}

func hubDelivers(t *testing.T, store *session.Store, hub *session.Hub) {
	{
		ctx := context.Background()
		a, _, _ := store.Create(ctx)
		b, _, _ := store.Create(ctx)
		sa, sb := newSink(), newSink()
		stopA, err := hub.Follow(ctx, a, sa)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hub.Follow(ctx, b, sb); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.AppendUserTurn(ctx, a, "hello a", event.SourceText); err != nil {
			t.Fatal(err)
		}
		sa.waitFor(t, "hello a")
		if err := store.Publish(ctx, a, []byte(`{"type":"state","text":"ephemeral"}`)); err != nil {
			t.Fatal(err)
		}
		sa.waitFor(t, "ephemeral")
		_, _, _ = store.AppendUserTurn(ctx, b, "hello b", event.SourceText)
		sb.waitFor(t, "hello b")
		stopA()
		stopA()
		_, _, _ = store.AppendUserTurn(ctx, a, "again a", event.SourceText)
		_, _, _ = store.AppendUserTurn(ctx, b, "again b", event.SourceText)
		sb.waitFor(t, "again b")
		for _, text := range []string{"hello b", "again b", "again a"} {
			if sa.has(text) {
				t.Errorf("session a's sink got %q", text)
			}
		}
		if sb.has("hello a") {
			t.Error("session b's sink got a's event")
		}
	}
}

// A script that appends several events (a reply's tail and its end)
// publishes them in one message, after a line that names its replica and
// the log's event before them; each reaches a sink of another replica on
// its own, in order, as the log holds it, with the id before it.
func TestHubDeliversAScriptsEvents(t *testing.T) {
	eachPubSub(t, func(t *testing.T, rdb *redis.Client, store *session.Store, hub *session.Hub, sharded bool) {
		ctx := context.Background()
		other := session.NewStore(rdb, session.Config{Sharded: sharded}) // another replica's
		id, _, _ := other.Create(ctx)
		turn, _, _ := other.AppendUserTurn(ctx, id, "hi", event.SourceText)
		if st, _, _ := other.StartTurn(ctx, id, turn, "run"); st != session.StartOK {
			t.Fatalf("start: %v", st)
		}
		sk := newSink()
		if _, err := hub.Follow(ctx, id, sk); err != nil {
			t.Fatal(err)
		}
		var raw *redis.PubSub
		if sharded {
			raw = rdb.SSubscribe(ctx, store.Channel(id))
		} else {
			raw = rdb.Subscribe(ctx, store.Channel(id))
		}
		defer raw.Close()
		if _, err := raw.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := other.FinishReply(ctx, id, session.Finish{Turn: turn, Run: "run", Text: "Hello there.", Tail: " there."}); err != nil {
			t.Fatal(err)
		}
		sk.waitFor(t, "Hello there.")
		logged, err := store.Range(ctx, id, "", 10)
		if err != nil || len(logged) != 3 {
			t.Fatalf("log: %d events, %v", len(logged), err)
		}
		want := []string{string(logged[1].Wire), string(logged[2].Wire)}
		got, prevs := sk.delivered()
		if !slices.Equal(got, want) {
			t.Fatalf("delivered %q, want %q", got, want)
		}
		if wantPrevs := []string{logged[0].ID, logged[1].ID}; !slices.Equal(prevs, wantPrevs) {
			t.Fatalf("delivered with prevs %q, want %q", prevs, wantPrevs)
		}
		m, err := raw.ReceiveMessage(ctx)
		header, events, _ := strings.Cut(m.Payload, "\n")
		_, prev, _ := strings.Cut(header, " ")
		if err != nil || prev != logged[0].ID || events != want[0]+"\n"+want[1] {
			t.Fatalf("published %q (%v), want a header with %s and both events in one message", m.Payload, err, logged[0].ID)
		}
	})
}

// A replica's own scripts hand their events to its sinks, and publish
// them only while another replica follows the session: then that one's
// sinks get them too, and this one's each event once (its own message is
// skipped).
func TestLocalDeliveryPublishesOnlyForOthers(t *testing.T) {
	eachPubSub(t, func(t *testing.T, rdb *redis.Client, store *session.Store, hub *session.Hub, sharded bool) {
		ctx := context.Background()
		publishes := func() int { return redistest.Calls(t, rdb, "publish", "spublish") }
		id, _, _ := store.Create(ctx)
		here := newSink()
		if _, err := hub.Follow(ctx, id, here); err != nil {
			t.Fatal(err)
		}
		// turn appends a user turn, waits until s has it, and returns the
		// publishes it cost.
		turn := func(text string, s *sink) int {
			t.Helper()
			before := publishes()
			if _, _, err := store.AppendUserTurn(ctx, id, text, event.SourceText); err != nil {
				t.Fatal(err)
			}
			s.waitFor(t, text)
			return publishes() - before
		}
		if n := turn("alone", here); n != 0 {
			t.Fatalf("%d publishes with no other replica following", n)
		}

		other := session.NewStore(rdb, session.Config{Sharded: sharded})
		there := newSink()
		stop, err := runHub(t, rdb, other).Follow(ctx, id, there)
		if err != nil {
			t.Fatal(err)
		}
		if n := turn("together", there); n != 1 {
			t.Fatalf("%d publishes with another replica following, want 1", n)
		}
		stop()
		if n := turn("alone again", here); n != 0 {
			t.Fatalf("%d publishes once the other replica stopped following", n)
		}
		logged, err := store.Range(ctx, id, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var want, wantPrevs []string
		prev := "0-0"
		for _, e := range logged {
			want, wantPrevs, prev = append(want, string(e.Wire)), append(wantPrevs, prev), e.ID
		}
		// A Pub/Sub message after them all: an echo of "together" would
		// come before it, on the same connection.
		if err := store.Publish(ctx, id, []byte(`{"type":"state","text":"sentinel"}`)); err != nil {
			t.Fatal(err)
		}
		here.waitFor(t, "sentinel")
		got, prevs := here.delivered()
		got, prevs = got[:len(got)-1], prevs[:len(prevs)-1]
		if !slices.Equal(got, want) || !slices.Equal(prevs, wantPrevs) {
			t.Fatalf("this replica's sink got %q after %q, want %q after %q", got, prevs, want, wantPrevs)
		}
	})
}

// On a three-node Redis Cluster: with sharded Pub/Sub every session's
// events reach its sink through a connection to the node of its slot, and
// none of them crosses the cluster bus, where each classic PUBLISH goes to
// every other node. A session whose slot moves to another node while it is
// followed goes on being delivered, after a resync.
func TestHubShardedOnCluster(t *testing.T) {
	ctx := context.Background()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()

	deliver := func(t *testing.T, store *session.Store, hub *session.Hub, n int) []string {
		ids := make([]string, n)
		sinks := make([]*sink, n)
		for i := range ids {
			ids[i], _, _ = store.Create(ctx)
			sinks[i] = newSink()
			if _, err := hub.Follow(ctx, ids[i], sinks[i]); err != nil {
				t.Fatal(err)
			}
		}
		for i, id := range ids {
			if _, _, err := store.AppendUserTurn(ctx, id, "hello "+id, event.SourceText); err != nil {
				t.Fatal(err)
			}
			sinks[i].waitFor(t, "hello "+id)
		}
		return ids
	}

	// One replica stores the events, another follows them: a replica's
	// own events reach its sinks without Pub/Sub.
	const n = 24
	classic := session.Config{Prefix: "classic"}
	before := cl.BusPublishes()
	deliver(t, session.NewStore(cc, classic), runHub(t, cc, session.NewStore(cc, classic)), n)
	classicBus := cl.BusPublishes() - before
	if classicBus < n {
		t.Fatalf("classic: %d publish messages on the bus for %d events; the counter does not count what it should", classicBus, n)
	}

	sharded := session.NewStore(cc, session.Config{Sharded: true})
	hub := runHub(t, cc, session.NewStore(cc, session.Config{Sharded: true}))
	before = cl.BusPublishes()
	ids := deliver(t, sharded, hub, n)
	if d := cl.BusPublishes() - before; d != 0 {
		t.Fatalf("sharded: %d publish messages on the bus (classic: %d)", d, classicBus)
	}
	t.Logf("cluster bus publish messages for %d events: classic %d, sharded 0", n, classicBus)

	t.Run("slot moved", func(t *testing.T) {
		id := ids[0]
		s := newSink()
		if _, err := hub.Follow(ctx, id, s); err != nil {
			t.Fatal(err)
		}
		moveSlot(t, cl, sharded.Channel(id))
		// Events published between the move and the new subscription are
		// the sink's to read from the log: it is told to.
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			n := s.resyncs
			s.mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no resync after the slot moved")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, _, err := sharded.AppendUserTurn(ctx, id, "after the move", event.SourceText); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "after the move")
	})
}

// moveSlot migrates the slot of key, with its keys, to another node, as
// redis-cli --cluster reshard does.
func moveSlot(t *testing.T, cl *redistest.Cluster, key string) {
	t.Helper()
	ctx := context.Background()
	cc := cl.Client()
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	src, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var dst *redis.Client
	for _, node := range cl.Nodes {
		if node.Addr != src.Options().Addr {
			dst = redis.NewClient(&redis.Options{Addr: node.Addr})
			defer dst.Close()
			break
		}
	}
	srcID, _ := src.ClusterMyID(ctx).Result()
	dstID, _ := dst.ClusterMyID(ctx).Result()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
	must(err)
	host, port, _ := strings.Cut(dst.Options().Addr, ":")
	for _, k := range keys {
		must(src.Migrate(ctx, host, port, k, 0, 5*time.Second).Err())
	}
	for _, node := range cl.Nodes {
		c := redis.NewClient(&redis.Options{Addr: node.Addr})
		must(c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
		c.Close()
	}
	// The client learns the new owner at its next MOVED, or now.
	cc.ReloadState(ctx)
}

// A script whose reply is lost (here its caller gives up while Redis is
// busy with another script, and Redis runs it after) has stored events
// that no sink was handed: the sinks here are told to read the log, once
// Redis answers.
func TestLostScriptReplyResyncs(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	// A client that gives up on a reply after 20 ms (go-redis reads with
	// its ReadTimeout, not a context's deadline, by default).
	impatient := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, ReadTimeout: 20 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { impatient.Close() })
	store := session.NewStore(impatient, session.Config{})
	hub := runHub(t, rdb, store)
	id, _, _ := store.Create(ctx)
	sk := newSink()
	if _, err := hub.Follow(ctx, id, sk); err != nil {
		t.Fatal(err)
	}
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	busy := make(chan error, 1)
	go func() { // a few hundred ms of Lua: Redis does nothing else meanwhile
		busy <- rdb.Eval(ctx, "local n = 0 for i = 1, 100000000 do n = n + i end return 1", nil).Err()
	}()
	// The busy script has started once a quick ping goes unanswered (a
	// sleep would race a loaded machine's scheduler).
	probe := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, ReadTimeout: 10 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { probe.Close() })
	for probe.Ping(ctx).Err() == nil {
	}
	_, _, err := store.AppendUserTurn(ctx, id, "stored unseen", event.SourceText)
	if err == nil {
		t.Fatal("the append returned while Redis was busy")
	}
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := store.Range(ctx, id, "", 10)
		sk.mu.Lock()
		resyncs := sk.resyncs
		sk.mu.Unlock()
		if err == nil && len(evs) == 1 && resyncs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %d events (%v), %d resyncs; want the event stored and the sink resynced", len(evs), err, resyncs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sk.has("stored unseen") {
		t.Fatal("the sink was handed an event whose script's reply was lost")
	}
}

// Several sockets may follow one session (a client reconnected while its
// old socket lingers): each gets every event, whichever stops first, and
// the session can be followed again after all have stopped. The Hub holds
// one sink without a map and lets go of a follow's channels once it is
// confirmed and counted; this walks both and what comes after them.
func TestHubSinksOfOneSession(t *testing.T) {
	eachPubSub(t, func(t *testing.T, rdb *redis.Client, store *session.Store, hub *session.Hub, sharded bool) {
		ctx := context.Background()
		id, _, _ := store.Create(ctx)
		other := session.NewStore(rdb, session.Config{Sharded: sharded}) // its events come through Pub/Sub
		s1, s2, s3 := newSink(), newSink(), newSink()
		follow := func(s *sink) func() {
			stop, err := hub.Follow(ctx, id, s)
			if err != nil {
				t.Fatal(err)
			}
			return stop
		}
		stop1 := follow(s1)
		stop2 := follow(s2)
		stop3 := follow(s3)
		for _, st := range []*session.Store{store, other} {
			text := "to three via " + fmt.Sprint(st == other)
			_, _, _ = st.AppendUserTurn(ctx, id, text, event.SourceText)
			for _, s := range []*sink{s1, s2, s3} {
				s.waitFor(t, text)
			}
		}
		stop1() // the first, held without the map
		stop1()
		_, _, _ = other.AppendUserTurn(ctx, id, "to two", event.SourceText)
		s2.waitFor(t, "to two")
		s3.waitFor(t, "to two")
		stop2()
		stop4 := follow(s1) // back, beside the one left
		_, _, _ = store.AppendUserTurn(ctx, id, "to s1 and s3", event.SourceText)
		s1.waitFor(t, "to s1 and s3")
		s3.waitFor(t, "to s1 and s3")
		stop3()
		stop4()
		_, _, _ = other.AppendUserTurn(ctx, id, "to none", event.SourceText)
		stop5 := follow(s2) // a new follow of the session, after none
		defer stop5()
		_, _, _ = other.AppendUserTurn(ctx, id, "to s2 again", event.SourceText)
		s2.waitFor(t, "to s2 again")
		if s1.has("to two") || s2.has("to s1 and s3") {
			t.Error("a stopped sink got an event")
		}
		for _, s := range []*sink{s1, s3} {
			if s.has("to none") || s.has("to s2 again") {
				t.Error("a stopped sink got an event after all had stopped")
			}
		}
	})
}
