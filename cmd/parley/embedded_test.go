package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// What bounds a call to a Redis that stopped answering, with no settings
// and with a REDIS_URL that names none: go-redis's read timeout and its
// retries (docs/operations.md, "A stalled Redis"; the turn engine's own
// test, TestStalledRedisFailsTheTurn, shortens the timeout to stay quick).
func TestRedisClientsWaitOnGoRedisDefaults(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, cfg := range map[string]*config{
		"embedded":  {},
		"REDIS_URL": {RedisURL: "redis://127.0.0.1:1"}, // not dialled: the options are what is checked
	} {
		t.Run(name, func(t *testing.T) {
			rdb, closeRedis, err := openRedis(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			defer closeRedis()
			opt := rdb.(*redis.Client).Options()
			if opt.ReadTimeout != 5*time.Second || opt.MaxRetries != 3 {
				t.Fatalf("read timeout %v, %d retries; want go-redis's 5s and 3", opt.ReadTimeout, opt.MaxRetries)
			}
		})
	}
}
