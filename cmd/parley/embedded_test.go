package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// Keys of the embedded Redis expire (sessions and rate-limit buckets would
// pile up otherwise), by the tick, a second or so after their TTL.
func TestEmbeddedRedisExpiresKeys(t *testing.T) {
	rdb, closeRedis, err := embeddedRedis(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer closeRedis()
	ctx := context.Background()
	if err := rdb.Set(ctx, "short", "v", 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "long", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for rdb.Exists(ctx, "short").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a TTL of 500 ms still there after 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rdb.Exists(ctx, "long").Val() != 1 {
		t.Fatal("a key with an hour to live expired too")
	}
}
