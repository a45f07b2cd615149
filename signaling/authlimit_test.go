package signaling

import (
	"net/netip"
	"testing"
	"time"
)

// Zero (the default) and negative budgets mean 10 failures, then 1 a
// second, the same as the flags' zero; set values are kept.
func TestAuthFailDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    Config
		burst int
		rate  float64
	}{
		{"zero, the default", Config{}, 10, 1},
		{"negative", Config{AuthFailBurst: -1, AuthFailRate: -1}, 10, 1},
		{"set values are kept", Config{AuthFailBurst: 3, AuthFailRate: 0.5}, 3, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.setDefaults()
			if c.AuthFailBurst != tc.burst || c.AuthFailRate != tc.rate {
				t.Fatalf("burst %d, rate %g; want %d, %g", c.AuthFailBurst, c.AuthFailRate, tc.burst, tc.rate)
			}
		})
	}
}

func TestAuthLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")
	t.Run("a burst, then the rate", func(t *testing.T) {
		l := newAuthLimiter(1, 3, clock)
		for i := 0; i < 3; i++ {
			if _, over, _ := l.failed(a); over {
				t.Fatalf("failure %d of a burst of 3 refused", i+1)
			}
		}
		wait, over, first := l.failed(a)
		if !over || !first || wait != time.Second {
			t.Fatalf("fourth: over %v first %v wait %v", over, first, wait)
		}
		if _, over, first := l.failed(a); !over || first {
			t.Fatalf("fifth: over %v, first %v (want a repeat)", over, first)
		}
		if _, over, _ := l.failed(netip.MustParseAddr("192.0.2.2")); over {
			t.Fatal("another address was refused")
		}
		now = now.Add(1500 * time.Millisecond)
		if _, over, _ := l.failed(a); over {
			t.Fatal("a second and a half later, still refused")
		}
		if wait, over, first := l.failed(a); !over || !first || wait != 500*time.Millisecond {
			t.Fatalf("then: over %v first %v wait %v", over, first, wait)
		}
	})
	t.Run("IPv6 by /64", func(t *testing.T) {
		l := newAuthLimiter(1, 2, clock)
		l.failed(netip.MustParseAddr("2001:db8:1:2::1"))
		l.failed(netip.MustParseAddr("2001:db8:1:2:ffff::9"))
		if _, over, _ := l.failed(netip.MustParseAddr("2001:db8:1:2:abcd::1")); !over {
			t.Fatal("a new address in the same /64 had a budget of its own")
		}
		if _, over, _ := l.failed(netip.MustParseAddr("2001:db8:1:3::1")); over {
			t.Fatal("another /64 was refused")
		}
	})
	t.Run("refilled addresses are forgotten", func(t *testing.T) {
		l := newAuthLimiter(1, 10, clock)
		for i := 0; i < 1000; i++ {
			l.failed(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		}
		now = now.Add(time.Minute)
		l.failed(a) // sweeps
		if n := len(l.ips); n != 1 {
			t.Fatalf("%d addresses remembered, want the one that failed last", n)
		}
	})
	t.Run("full: new addresses count as over budget", func(t *testing.T) {
		l := newAuthLimiter(1, 10, clock)
		for i := 0; i < maxAuthEntries; i++ {
			l.failed(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		}
		if _, over, _ := l.failed(a); !over {
			t.Fatal("an address past the table's bound had a budget")
		}
		if _, over, _ := l.failed(netip.MustParseAddr("10.0.0.1")); over {
			t.Fatal("an address already known lost its budget")
		}
		now = now.Add(time.Minute) // the buckets refill; the next one sweeps
		if _, over, _ := l.failed(a); over || len(l.ips) != 1 {
			t.Fatalf("after the sweep: over %v, %d addresses", over, len(l.ips))
		}
	})
}
