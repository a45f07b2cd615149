package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/ratelimit"
)

// backends: the real server the product runs on, and the embedded
// miniredis of the one-machine demo, which must run the same script.
func backends(t *testing.T) map[string]*redis.Client {
	m := miniredis.RunT(t)
	m.ClockTTL(true)
	mc := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { mc.Close() })
	return map[string]*redis.Client{"redis": redistest.Start(t).Client(), "miniredis": mc}
}

func TestTokenBucket(t *testing.T) {
	ctx := context.Background()
	for name, rdb := range backends(t) {
		t.Run(name, func(t *testing.T) {
			l := ratelimit.New(rdb, ratelimit.Config{})
			if err := l.Load(ctx); err != nil {
				t.Fatal(err)
			}
			allow := func(key string, r ratelimit.Rule) ratelimit.Result {
				t.Helper()
				res, err := l.Allow(ctx, key, r)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}

			t.Run("burst", func(t *testing.T) {
				r := ratelimit.Rule{Rate: 0.1, Burst: 5}
				for i := 0; i < 5; i++ {
					if !allow("burst", r).Allowed {
						t.Fatalf("call %d of a burst of 5 refused", i+1)
					}
				}
				if allow("burst", r).Allowed {
					t.Fatal("the 6th call of a burst of 5 was allowed")
				}
			})

			t.Run("units: 2/s admits about 2/s", func(t *testing.T) {
				r := ratelimit.Rule{Rate: 2, Burst: 2}
				n := 0
				for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
					if allow("units", r).Allowed {
						n++
					}
					time.Sleep(2 * time.Millisecond)
				}
				// 2 of burst + about 3 refilled; a ms/s mix-up would give hundreds.
				if n < 3 || n > 7 {
					t.Fatalf("%d allowed in 1.5 s at 2/s with burst 2", n)
				}
			})

			t.Run("retry after", func(t *testing.T) {
				for _, tc := range []struct {
					rate     float64
					min, max time.Duration
				}{{2, 400 * time.Millisecond, 600 * time.Millisecond}, {0.5, 1900 * time.Millisecond, 2100 * time.Millisecond}} {
					key := "retry" + time.Duration(tc.rate*1000).String()
					r := ratelimit.Rule{Rate: tc.rate, Burst: 1}
					allow(key, r)
					res := allow(key, r)
					if res.Allowed || res.RetryAfter < tc.min || res.RetryAfter > tc.max {
						t.Fatalf("rate %v: %+v, want refused with retry in [%v, %v]", tc.rate, res, tc.min, tc.max)
					}
				}
			})

			t.Run("fractional refill", func(t *testing.T) {
				r := ratelimit.Rule{Rate: 10, Burst: 1}
				allow("frac", r)
				time.Sleep(150 * time.Millisecond) // 1.5 tokens, capped at 1
				if !allow("frac", r).Allowed {
					t.Fatal("a refilled token was refused")
				}
				if res := allow("frac", r); res.Allowed {
					t.Fatalf("a second token came from 150 ms at 10/s: %+v", res)
				}
			})

			t.Run("refused calls take nothing", func(t *testing.T) {
				r := ratelimit.Rule{Rate: 0.01, Burst: 1}
				allow("nothing", r)
				a := allow("nothing", r)
				b := allow("nothing", r)
				if a.Allowed || b.Allowed || b.Remaining < a.Remaining {
					t.Fatalf("refused calls changed the bucket: %+v then %+v", a, b)
				}
			})

			t.Run("refund", func(t *testing.T) {
				r := ratelimit.Rule{Rate: 0.01, Burst: 2}
				allow("refund", r)
				allow("refund", r)
				if err := l.Refund(ctx, "refund", r); err != nil {
					t.Fatal(err)
				}
				if !allow("refund", r).Allowed {
					t.Fatal("the refunded token is not there")
				}
				for i := 0; i < 5; i++ {
					_ = l.Refund(ctx, "refund", r)
				}
				if res := allow("refund", r); !res.Allowed || res.Remaining > 1.0001 {
					t.Fatalf("refunds must stop at the burst: %+v", res)
				}
			})

			t.Run("key expires when it would be full", func(t *testing.T) {
				r := ratelimit.Rule{Rate: 100, Burst: 1}
				allow("exp", r)
				ttl := rdb.PTTL(ctx, "parley:rl:exp").Val()
				// 1 token at 100/s is 10 ms to refill, plus the 1 s margin.
				if ttl <= 0 || ttl > 1010*time.Millisecond {
					t.Fatalf("TTL %v, want in (0, 1.01s]", ttl)
				}
				deadline := time.Now().Add(5 * time.Second)
				for rdb.Exists(ctx, "parley:rl:exp").Val() == 1 {
					if time.Now().After(deadline) {
						t.Fatal("the bucket key never expired")
					}
					time.Sleep(50 * time.Millisecond)
				}
			})

			t.Run("zero rate is unlimited and touches no key", func(t *testing.T) {
				for i := 0; i < 100; i++ {
					if !allow("free", ratelimit.Rule{}).Allowed {
						t.Fatal("refused without a rate")
					}
				}
				if rdb.Exists(ctx, "parley:rl:free").Val() != 0 {
					t.Fatal("an unlimited rule wrote a key")
				}
			})
		})
	}
}

// Peek tells what is left without taking it: a fresh bucket is full, a
// take shows, and peeking again and again changes nothing.
func TestPeek(t *testing.T) {
	ctx := context.Background()
	for name, rdb := range backends(t) {
		t.Run(name, func(t *testing.T) {
			l := ratelimit.New(rdb, ratelimit.Config{})
			r := ratelimit.Rule{Rate: 0.001, Burst: 5} // no refill within the test
			peek := func() float64 {
				t.Helper()
				res, err := l.Peek(ctx, "k", r)
				if err != nil || !res.Allowed {
					t.Fatalf("peek: %+v, %v", res, err)
				}
				return res.Remaining
			}
			if got := peek(); got != 5 {
				t.Fatalf("a fresh bucket has %v", got)
			}
			if _, err := l.Allow(ctx, "k", r); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if got := peek(); got < 4 || got > 4.01 {
					t.Fatalf("after one take: %v", got)
				}
			}
		})
	}
}

// A token is taken once when the reply to the bucket's script is lost and
// the Redis client sends it again.
func TestTokenTakenOnceWhenItsReplyIsLost(t *testing.T) {
	ctx := context.Background()
	srv, link, rdb := redistest.StartLossy(t)
	l := ratelimit.New(rdb, ratelimit.Config{})
	if err := l.Load(ctx); err != nil {
		t.Fatal(err)
	}
	rule := ratelimit.Rule{Rate: 0.001, Burst: 5} // no refill to speak of during the test
	link.LoseScriptReply(t, srv.Client(), func() {
		res, err := l.Allow(ctx, "k", rule)
		if err != nil || !res.Allowed {
			t.Fatalf("Allow whose reply was lost: %+v, %v", res, err)
		}
	})
	peek, err := l.Peek(ctx, "k", rule)
	if err != nil {
		t.Fatal(err)
	}
	if peek.Remaining < 3.9 || peek.Remaining > 4.1 {
		t.Fatalf("%.3f tokens left, want 4: one taken, not two", peek.Remaining)
	}
}
