package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// embeddedRedis starts an in-process miniredis for a one-machine demo (no
// REDIS_URL), and returns a client of it and its close function.
//
// Keys expire by a tick a second, not by miniredis's ClockTTL: that one
// sorts every key in the database at each command, so the embedded Redis
// slowed as sessions accumulated (300 new sessions' turns took about 10 s
// where they take well under one). A key now lives up to a second past
// its TTL; Parley's shortest, a rate-limit bucket's, is several seconds,
// and only bounds memory (the scripts read the clock with TIME).
func embeddedRedis(log *slog.Logger) (redis.UniversalClient, func(), error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, nil, fmt.Errorf("embedded redis: %w", err)
	}
	log.Warn("REDIS_URL is not set: using an embedded in-process Redis (miniredis) for a one-machine demo; "+
		"state is lost on exit and it is slow under load. Set REDIS_URL for anything else.", "addr", m.Addr())
	stop := make(chan struct{})
	go expireKeys(m, time.Second, stop) // ends when stop is closed, by the close function
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return rdb, func() { close(stop); rdb.Close(); m.Close() }, nil
}

// expireKeys moves miniredis's TTLs on by the time elapsed, every period,
// until stop is closed.
func expireKeys(m *miniredis.Miniredis, period time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			m.FastForward(now.Sub(last))
			last = now
		}
	}
}
