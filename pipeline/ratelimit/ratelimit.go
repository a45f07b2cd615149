package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rule is a bucket's shape: Rate tokens per second refill it, up to Burst.
// A zero Rate means no limit.
type Rule struct {
	Rate  float64
	Burst int
}

// Config of a Limiter. A zero field means the default in its comment.
type Config struct {
	Prefix string // key prefix; default "parley:rl:"
}

// Result of a take.
type Result struct {
	Allowed    bool
	RetryAfter time.Duration // when refused: until one token is there
	Remaining  float64       // tokens left after this call
}

// Limiter takes tokens from buckets in Redis.
type Limiter struct {
	rdb    redis.Scripter
	prefix string
	// name and calls make each call's key (bucket.lua), unique across
	// processes: name is random per Limiter.
	name  string
	calls atomic.Uint64
}

// New returns a Limiter on rdb.
func New(rdb redis.Scripter, cfg Config) *Limiter {
	if cfg.Prefix == "" {
		cfg.Prefix = "parley:rl:"
	}
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand does not fail
	return &Limiter{rdb: rdb, prefix: cfg.Prefix, name: hex.EncodeToString(r[:])}
}

// The bucket is a hash {t: tokens, ts: last refill in µs, k: the latest
// call's key and reply, for a call sent again}. Time and rate
// are in one unit (µs and tokens per µs) so the refill cannot be off by
// 1000×. The TTL is the time to refill from empty, after which a missing
// key and a full bucket are the same; never 0.
//
// ARGV: rate (tokens/s), burst, cost (negative refunds). Returns {allowed,
// retry_after_ms, remaining as a string}.
var bucket = redis.NewScript(lua("bucket.lua"))

// Load loads the script, so a broken Redis is found at start-up.
func (l *Limiter) Load(ctx context.Context) error {
	if err := bucket.Load(ctx, l.rdb).Err(); err != nil {
		return fmt.Errorf("ratelimit: load script: %w", err)
	}
	return nil
}

// Allow takes one token from key's bucket if there is one.
func (l *Limiter) Allow(ctx context.Context, key string, r Rule) (Result, error) {
	return l.take(ctx, key, r, 1)
}

// Refund gives one token back (up to Burst): for a turn that one bucket
// allowed and a later one refused.
func (l *Limiter) Refund(ctx context.Context, key string, r Rule) error {
	_, err := l.take(ctx, key, r, -1)
	return err
}

// Peek reads key's bucket without taking a token: the tokens left, as of
// now (Remaining; +Inf for a rule without a limit).
func (l *Limiter) Peek(ctx context.Context, key string, r Rule) (Result, error) {
	return l.take(ctx, key, r, 0)
}

func (l *Limiter) take(ctx context.Context, key string, r Rule, cost int) (Result, error) {
	if r.Rate <= 0 {
		return Result{Allowed: true, Remaining: math.Inf(1)}, nil
	}
	burst := r.Burst
	if burst < 1 {
		burst = 1
	}
	res, err := bucket.Run(ctx, l.rdb, []string{l.prefix + key},
		strconv.FormatFloat(r.Rate, 'g', -1, 64), burst, cost, l.name+"/"+strconv.FormatUint(l.calls.Add(1), 36)).Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: %w", err)
	}
	if len(res) != 3 {
		return Result{}, fmt.Errorf("ratelimit: unexpected reply %v", res)
	}
	allowed, _ := res[0].(int64)
	retry, _ := res[1].(int64)
	rem, _ := res[2].(string)
	remaining, _ := strconv.ParseFloat(rem, 64)
	return Result{Allowed: allowed == 1, RetryAfter: time.Duration(retry) * time.Millisecond, Remaining: remaining}, nil
}
