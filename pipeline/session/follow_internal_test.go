package session

import (
	"context"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/redistest"
)

// A follow is counted once when the reply to its script is lost and the
// Redis client sends it again: counted twice, the session's events would
// go through Pub/Sub for a replica that no longer follows it.
func TestFollowCountedOnceWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	srv, link, rdb := redistest.StartLossy(t)
	s := NewStore(rdb, Config{})
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	id, _, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	direct := srv.Client()
	link.LoseScriptReply(t, direct, func() {
		if err := s.countFollow(id, 1); err != nil {
			t.Fatal(err)
		}
	})
	for _, field := range []string{"fc", "f:" + s.replica} {
		if n, err := direct.HGet(ctx, s.metaKey(id), field).Int(); err != nil || n != 1 {
			t.Errorf("%s = %d (%v), want 1", field, n, err)
		}
	}
}
