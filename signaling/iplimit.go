package signaling

import (
	"math"
	"sync"
	"time"
)

// ipLimiter caps each client IP's open connections and new connections per
// second (a token bucket per IP). Safe for concurrent use. Entries of IPs
// with no open connection and a full bucket are swept, so the map stays
// the size of the active clients.
type ipLimiter struct {
	maxConns int     // <= 0: no cap
	rate     float64 // new connections per second; <= 0: no cap
	burst    float64
	now      func() time.Time

	mu        sync.Mutex
	ips       map[string]*ipState
	lastSweep time.Time
}

type ipState struct {
	conns  int
	tokens float64
	last   time.Time
}

func newIPLimiter(maxConns int, rate float64, burst int, now func() time.Time) *ipLimiter {
	burst = max(burst, 1) // Config.setDefaults picked it; a bucket holds at least one
	return &ipLimiter{maxConns: maxConns, rate: rate, burst: float64(burst), now: now, ips: make(map[string]*ipState)}
}

func (l *ipLimiter) on() bool { return l.maxConns > 0 || l.rate > 0 }

// admit takes a connection for ip, or says why not and when to retry.
func (l *ipLimiter) admit(ip string) (Reason, time.Duration, bool) {
	if !l.on() {
		return 0, 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	st := l.ips[ip]
	if st == nil {
		st = &ipState{tokens: l.burst, last: now}
		l.ips[ip] = st
	}
	if l.rate > 0 {
		st.tokens = math.Min(l.burst, st.tokens+now.Sub(st.last).Seconds()*l.rate)
		st.last = now
	}
	if l.maxConns > 0 && st.conns >= l.maxConns {
		return ReasonIPConnections, time.Second, false
	}
	if l.rate > 0 {
		if st.tokens < 1 {
			wait := time.Duration((1 - st.tokens) / l.rate * float64(time.Second))
			return ReasonIPRate, wait, false
		}
		st.tokens--
	}
	st.conns++
	return 0, 0, true
}

// release gives back a connection admitted for ip.
func (l *ipLimiter) release(ip string) {
	if !l.on() {
		return
	}
	l.mu.Lock()
	if st := l.ips[ip]; st != nil && st.conns > 0 {
		st.conns--
	}
	l.mu.Unlock()
}

// sweepLocked forgets, at most every 10 s, the IPs that hold nothing: no
// open connection and a bucket that has refilled.
func (l *ipLimiter) sweepLocked(now time.Time) {
	if now.Sub(l.lastSweep) < 10*time.Second {
		return
	}
	l.lastSweep = now
	for ip, st := range l.ips {
		full := l.rate <= 0 || st.tokens+now.Sub(st.last).Seconds()*l.rate >= l.burst
		if st.conns == 0 && full {
			delete(l.ips, ip)
		}
	}
}
