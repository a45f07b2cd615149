package session

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
)

// A follow is counted once when the reply to its script is lost and the
// Redis client sends it again: counted twice, the session's events would
// go through Pub/Sub for a replica that no longer follows it.
func TestFollowCountedOnceWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	link := redistest.NewLossyLink(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: link.Addr}) // go-redis's default retries
	t.Cleanup(func() { rdb.Close() })
	s := NewStore(rdb, Config{})
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	id, _, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	direct := srv.Client()
	before := redistest.Calls(t, direct, "evalsha", "eval")
	link.DropNextReply()
	if err := s.countFollow(id, 1); err != nil {
		t.Fatal(err)
	}
	if runs := redistest.Calls(t, direct, "evalsha", "eval") - before; runs != 2 {
		t.Fatalf("the script ran %d times, want 2 (the lost run and the client's retry)", runs)
	}
	for _, field := range []string{"fc", "f:" + s.replica} {
		if n, err := direct.HGet(ctx, s.metaKey(id), field).Int(); err != nil || n != 1 {
			t.Errorf("%s = %d (%v), want 1", field, n, err)
		}
	}
}
