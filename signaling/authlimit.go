package signaling

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// authLimiter counts failed authentications per client address, in a
// token bucket of failures: burst failures at once, then rate a second.
// Only failures spend it, so a proxy's many good clients, all on one
// address, never do; an address past its budget has its wrong tokens
// refused with ReasonAuthRate (429) instead of 401, while a good token
// from it still passes. Safe for concurrent use.
//
// Memory is bounded: an address whose bucket has refilled is forgotten
// (swept every 10 s), and past maxAuthEntries addresses an address not yet
// known counts as over its budget. That costs a good client nothing, as a
// good token passes anyway.
type authLimiter struct {
	rate, burst float64
	now         func() time.Time

	mu        sync.Mutex
	ips       map[netip.Addr]*failBucket
	lastSweep time.Time
}

// maxAuthEntries bounds the addresses remembered: about 100 bytes each.
const maxAuthEntries = 1 << 16

type failBucket struct {
	tokens    float64
	last      time.Time
	throttled bool // the last failure was refused
}

func newAuthLimiter(rate float64, burst int, now func() time.Time) *authLimiter {
	return &authLimiter{rate: rate, burst: float64(max(burst, 1)), now: now, ips: make(map[netip.Addr]*failBucket)}
}

// failed spends one failure of addr's budget. Over budget, it says so,
// when the next failure will be allowed, and whether this is the first
// refusal since the address was last within its budget (worth a log line,
// where the rest are not).
func (l *authLimiter) failed(addr netip.Addr) (wait time.Duration, over, first bool) {
	key := failKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now, false)
	b := l.ips[key]
	if b == nil {
		if len(l.ips) >= maxAuthEntries {
			if l.sweepLocked(now, true); len(l.ips) >= maxAuthEntries {
				return time.Duration(float64(time.Second) / l.rate), true, false
			}
		}
		b = &failBucket{tokens: l.burst, last: now}
		l.ips[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		first = !b.throttled
		b.throttled = true
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), true, first
	}
	b.tokens--
	b.throttled = false
	return 0, false, false
}

// failKey is the address a failure is counted against: an IPv4 address,
// or an IPv6 address's /64, as one host or household is given a whole
// /64 and may pick any address in it.
func failKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// sweepLocked forgets, every 10 s or when forced (but at most once a
// second), the addresses whose buckets have refilled.
func (l *authLimiter) sweepLocked(now time.Time, force bool) {
	since := now.Sub(l.lastSweep)
	if since < 10*time.Second && (!force || since < time.Second) {
		return
	}
	l.lastSweep = now
	for k, b := range l.ips {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.ips, k)
		}
	}
}
