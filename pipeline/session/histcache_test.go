package session_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/session"
)

// A turn's start reads only the history entries stored since the replica's
// last start of the session; what it returns must still be exactly the
// latest window Redis holds, whichever replica stored or edited entries
// in between, and whether the turn was started by Start or as it was
// stored (AppendUserTurnStarted), whose run then owns it (the finish).
func TestStartHistoryWindowStaysExact(t *testing.T) {
	const window = 6
	for _, tc := range []struct {
		name  string
		cache int // the stores' HistoryCache
		edits bool
	}{
		// The default cache (0: 2,048 sessions).
		{"cached, entries only appended", 0, false},
		{"cached, entries edited and deleted", 0, true},
		// A cache of one window, so that the two sessions evict each
		// other's at every turn; and none at all.
		{"cached window of one session", 1, true},
		{"no cache", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client()
			replicas := []*session.Store{
				session.NewStore(rdb, session.Config{HistoryCache: tc.cache}),
				session.NewStore(rdb, session.Config{HistoryCache: tc.cache}),
			}
			ids := make([]string, 2)
			for i := range ids {
				ids[i], _, _ = replicas[0].Create(ctx)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for step := range 120 {
				s := replicas[rng.IntN(2)]
				id := ids[rng.IntN(2)]
				if tc.edits && rng.IntN(6) == 0 {
					editOne(t, s, id, rng)
				}
				// Sometimes more turns than the window between two starts.
				for range 1 + rng.IntN(2)*rng.IntN(window+2) {
					if _, _, err := s.AppendUserTurn(ctx, id, fmt.Sprintf("q%d", step), "text"); err != nil {
						t.Fatal(err)
					}
				}
				run := fmt.Sprintf("run%d", step)
				var turn int64
				var st session.Started
				var err error
				if rng.IntN(2) == 0 { // stored and started in one script
					turn, st, err = s.AppendUserTurnStarted(ctx, id, fmt.Sprintf("q%d", step), "text", run, window, session.JobField{})
				} else {
					if turn, err = s.Respond(ctx, id); err != nil {
						t.Fatal(err)
					}
					st, err = s.Start(ctx, id, turn, run, window, "")
				}
				if err != nil || st.Status != session.StartOK {
					t.Fatalf("step %d: start %+v, %v", step, st, err)
				}
				want, err := s.History(ctx, id, window)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(st.History, want) {
					t.Fatalf("step %d: history from the start\n%+v\nwant what Redis holds\n%+v", step, st.History, want)
				}
				if ok, err := s.FinishTurn(ctx, id, turn, run, fmt.Sprintf("a%d", step), false); !ok || err != nil {
					t.Fatalf("step %d: finish %v %v", step, ok, err)
				}
			}
		})
	}
}

// editOne cuts or deletes one of the session's history entries, as a
// Realtime client's truncate or item delete does.
func editOne(t *testing.T, s *session.Store, id string, rng *rand.Rand) {
	t.Helper()
	entries, err := s.HistoryEntries(context.Background(), id)
	if err != nil || len(entries) == 0 {
		return
	}
	e := entries[len(entries)-1-rng.IntN(min(len(entries), 8))]
	var with *session.Turn
	if rng.IntN(2) == 0 {
		cut := e.Turn
		cut.Content += " (cut)"
		with = &cut
	}
	if err := s.EditHistory(context.Background(), id, e.ID, with); err != nil {
		t.Fatal(err)
	}
}
