package openai

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	retries = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upstream", Name: "retries_total",
		Help: "Upstream calls sent again after a failure, by API path.",
	}, []string{"path"})
	breakerOpened = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upstream", Name: "circuit_opened_total",
		Help: "Times an upstream's circuit breaker opened, by API path.",
	}, []string{"path"})
	breakerRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upstream", Name: "circuit_refused_total",
		Help: "Calls failed at once because the upstream's circuit was open, by API path.",
	}, []string{"path"})
)

// ErrCircuitOpen: the upstream failed too often lately; calls fail at once
// until a trial call gets through.
var ErrCircuitOpen = errors.New("upstream unavailable (circuit open)")

// httpError is a non-2xx answer.
type httpError struct {
	status     int
	text       string
	retryAfter time.Duration // from a 429's or 503's Retry-After
}

func (e *httpError) Error() string { return "upstream: " + e.text }

// retryable reports whether err may be cured by sending the call again:
// the upstream was unreachable, overloaded or failed on its side. Not a
// 4xx other than 429: the request itself is wrong.
func retryable(err error) bool {
	var he *httpError
	if errors.As(err, &he) {
		return he.status == http.StatusTooManyRequests || he.status >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// retryAfter parses Retry-After in seconds (the form model servers use).
func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

// backoff is the wait before attempt n (1, 2, …): exponential from base,
// with full jitter, or what the upstream asked for.
func backoff(n int, base time.Duration, asked time.Duration) time.Duration {
	if asked > 0 {
		return asked
	}
	d := base << (n - 1)
	return d/2 + rand.N(d/2+1)
}

// breaker is a circuit breaker for one upstream: after Failures calls in
// a row failed (retries included), it opens for Cooldown; then one trial
// call is let through, and its outcome closes or reopens it. Safe for
// concurrent use.
type breaker struct {
	failures int
	cooldown time.Duration
	now      func() time.Time

	mu        sync.Mutex
	fails     int
	openUntil time.Time
	trial     bool // a trial call is under way
}

// allow reports whether a call may go, or how long until one may.
func (b *breaker) allow() (bool, time.Duration) {
	if b == nil || b.failures <= 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < b.failures {
		return true, 0
	}
	now := b.now()
	if now.Before(b.openUntil) {
		return false, b.openUntil.Sub(now)
	}
	if b.trial {
		return false, b.cooldown
	}
	b.trial = true
	return true, 0
}

// done records a call's outcome; true when it opened the circuit.
func (b *breaker) done(ok bool) bool {
	if b == nil || b.failures <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if ok {
		b.fails = 0
		return false
	}
	b.fails++
	if b.fails >= b.failures {
		b.openUntil = b.now().Add(b.cooldown)
		return true
	}
	return false
}

// send runs one call with retries inside ctx's deadline and the breaker:
// attempt is one try; a retryable failure is tried again after a backoff,
// unless the wait would pass the deadline.
func send(ctx context.Context, cfg *Config, path string, attempt func() (*http.Response, error)) (*http.Response, error) {
	if ok, wait := cfg.breaker.allow(); !ok {
		breakerRefused.WithLabelValues(path).Inc()
		return nil, fmt.Errorf("%w: %s failed %d times in a row; next try in %s", ErrCircuitOpen, cfg.shown+path, cfg.BreakerFailures, wait.Round(100*time.Millisecond))
	}
	var resp *http.Response
	var err error
	for n := 1; ; n++ {
		resp, err = attempt()
		if err == nil || n > cfg.Retries || !retryable(err) || ctx.Err() != nil {
			break
		}
		var he *httpError
		var asked time.Duration
		if errors.As(err, &he) {
			asked = he.retryAfter
		}
		wait := backoff(n, cfg.RetryBackoff, asked)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			break // no time left for another try within the turn
		}
		retries.WithLabelValues(path).Inc()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	// A cancelled call (the caller interrupted) says nothing about the
	// upstream's health.
	if ctx.Err() == nil || err == nil {
		if cfg.breaker.done(err == nil) {
			breakerOpened.WithLabelValues(path).Inc()
		}
	}
	return resp, err
}
