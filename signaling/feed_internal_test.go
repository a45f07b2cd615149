package signaling

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
)

// writerFunc is a Writer that records.
type writerFunc func([]byte) error

func (w writerFunc) WriteText(b []byte) error { return w(b) }

// runQueued does what a socket's writer would: it sends the frames
// queued on a SocketForTest and runs the work queued with them (a feed's
// replay), and returns the text frames in the order they went out.
func runQueued(t *testing.T, s *Socket) []string {
	t.Helper()
	var out []string
	w := writerFunc(func(b []byte) error { out = append(out, string(b)); return nil })
	for {
		s.send.mu.Lock()
		if len(s.send.items) == 0 {
			s.send.mu.Unlock()
			return out
		}
		f := s.send.items[0]
		s.send.items = s.send.items[1:]
		s.send.mu.Unlock()
		switch {
		case f.run != nil:
			if err := f.run(w); err != nil {
				t.Fatal(err)
			}
		case f.data != nil:
			out = append(out, string(f.data))
		}
	}
}

// storedEvents stores n events in a new session and returns it with the
// log's events.
func storedEvents(t *testing.T, store *session.Store, n int) (string, []session.Event) {
	t.Helper()
	ctx := context.Background()
	id, _, err := store.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := store.AppendEvent(ctx, id, event.DTMF{Turn: 1, Digit: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	logged, err := store.Range(ctx, id, "", 100)
	if err != nil || len(logged) != n {
		t.Fatalf("log: %d events, %v", len(logged), err)
	}
	return id, logged
}

// A live feed sends each stored event once and in order, however its
// live events come: twice, out of order (this replica's scripts hand
// theirs over directly, others come by Pub/Sub), or after one that does
// not come at all (the log has it).
func TestFeedSendsEachEventOnceInOrder(t *testing.T) {
	store := session.NewStore(redistest.Start(t).Client(), session.Config{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name  string
		order []int // the log's events, in the order delivered live
	}{
		{"in order", []int{0, 1, 2}},
		{"twice", []int{0, 0, 1, 2, 1, 2}},
		{"swapped", []int{1, 0, 2}},
		{"last first", []int{2, 0, 1}},
		{"one never delivered", []int{0, 2}},
		{"only the last", []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, logged := storedEvents(t, store, 3)
			// Live, as a feed is once its first replay is over.
			f := &Feed{sock: SocketForTest(Config{}, log), store: store, id: id, lastTouch: time.Now()}
			for _, i := range tc.order {
				prev := "0-0"
				if i > 0 {
					prev = logged[i-1].ID
				}
				f.Deliver(prev, logged[i].Wire)
			}
			var want []string
			for _, e := range logged {
				want = append(want, string(e.Wire))
			}
			if got := runQueued(t, f.sock); !slices.Equal(got, want) {
				t.Fatalf("sent %q, want %q", got, want)
			}
			if f.replaying {
				t.Fatal("the feed did not go live again")
			}
		})
	}
}

// A live event held during a replay that still finds a gap (the event
// before it was stored after the log was read, and has not come) is held
// again, ahead of what came since, for the next read of the log.
func TestFeedDrainHoldsAGap(t *testing.T) {
	store := session.NewStore(redistest.Start(t).Client(), session.Config{})
	id, logged := storedEvents(t, store, 3)
	f := &Feed{sock: SocketForTest(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil))), store: store, id: id,
		lastID: logged[0].ID, replaying: true}
	later := live{logged[0].ID, logged[1].Wire} // came while draining
	f.pending = []live{later}
	var sent []string
	w := writerFunc(func(b []byte) error { sent = append(sent, string(b)); return nil })
	again, err := f.drain(w, []live{{logged[1].ID, logged[2].Wire}})
	if err != nil || !again {
		t.Fatalf("drain: again %v, %v; want a gap", again, err)
	}
	if len(sent) != 0 || len(f.pending) != 2 || string(f.pending[0].wire) != string(logged[2].Wire) || string(f.pending[1].wire) != string(logged[1].Wire) {
		t.Fatalf("sent %q, held %d; want nothing sent and both held, the gap's first", sent, len(f.pending))
	}
	// The replay reads the log again and ends live, each event once.
	if err := f.replay(w); err != nil {
		t.Fatal(err)
	}
	if want := []string{string(logged[1].Wire), string(logged[2].Wire)}; !slices.Equal(sent, want) || f.replaying {
		t.Fatalf("sent %q (replaying %v), want %q", sent, f.replaying, want)
	}
}
