package signaling

import (
	"net/http"
	"testing"
	"time"
)

// The limiter forgets an IP that holds nothing (no connection, a full
// bucket), so a scan of many addresses does not grow it for good.
func TestIPLimiterForgetsIdleAddresses(t *testing.T) {
	now := time.Unix(0, 0)
	l := newIPLimiter(2, 10, 5, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		ip := "10.0.0." + string(rune('0'+i%10)) + string(rune('0'+i/10))
		if _, _, ok := l.admit(ip); !ok {
			t.Fatalf("%s refused", ip)
		}
		l.release(ip)
	}
	if _, _, ok := l.admit("192.0.2.1"); !ok {
		t.Fatal("refused")
	}
	now = now.Add(time.Minute)
	if _, _, ok := l.admit("192.0.2.2"); !ok { // sweeps
		t.Fatal("refused")
	}
	if n := len(l.ips); n != 2 {
		t.Fatalf("%d addresses remembered, want the 2 with an open connection", n)
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote string
		xff    string
		trust  bool
		want   string
	}{
		{"the peer", "203.0.113.5:4711", "", false, "203.0.113.5"},
		{"X-Forwarded-For ignored by default", "203.0.113.5:4711", "198.51.100.7", false, "203.0.113.5"},
		{"X-Forwarded-For behind a trusted proxy", "10.0.0.1:4711", "198.51.100.7, 10.0.0.1", true, "198.51.100.7"},
		{"garbage X-Forwarded-For", "10.0.0.1:4711", "not an ip", true, "10.0.0.1"},
		{"IPv6 peer", "[2001:db8::1]:4711", "", false, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := clientIP(r, tc.trust); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// Zero in Config (the default) means no cap, as does a negative value.
func TestIPCapDefaults(t *testing.T) {
	for _, tc := range []struct {
		name            string
		in              Config
		conns           int
		rate            float64
		burst           int
		connsOn, rateOn bool
	}{
		{"zero, the default: no caps", Config{}, 0, 0, 0, false, false},
		{"negative: no caps", Config{MaxConnsPerIP: -1, ConnectRatePerIP: -1}, -1, -1, 0, false, false},
		{"a rate without a burst: twice the rate", Config{ConnectRatePerIP: 2.5}, 0, 2.5, 5, false, true},
		{"set values are kept", Config{MaxConnsPerIP: 3, ConnectRatePerIP: 1, ConnectBurst: 7}, 3, 1, 7, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.setDefaults()
			if c.MaxConnsPerIP != tc.conns || c.ConnectRatePerIP != tc.rate || c.ConnectBurst != tc.burst {
				t.Fatalf("got %d open, %g/s, burst %d; want %d, %g/s, burst %d",
					c.MaxConnsPerIP, c.ConnectRatePerIP, c.ConnectBurst, tc.conns, tc.rate, tc.burst)
			}
			l := newIPLimiter(c.MaxConnsPerIP, c.ConnectRatePerIP, c.ConnectBurst, c.Now)
			if (l.maxConns > 0) != tc.connsOn || (l.rate > 0) != tc.rateOn {
				t.Fatalf("limiter: %d open, %g/s", l.maxConns, l.rate)
			}
		})
	}
}
