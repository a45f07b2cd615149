package signaling

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
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

// The client's address: the TCP peer unless it is a trusted proxy; then
// the proxies' header, right to left, past the trusted proxies.
func TestClientIP(t *testing.T) {
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8", "127.0.0.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		remote  string
		xff     []string // X-Forwarded-For lines
		fwd     []string // Forwarded lines
		trusted []netip.Prefix
		want    string
	}{
		{"the peer", "203.0.113.5:4711", nil, nil, nil, "203.0.113.5"},
		{"no trusted proxies: a forged X-Forwarded-For is ignored", "203.0.113.5:4711", []string{"198.51.100.7"}, nil, nil, "203.0.113.5"},
		{"no trusted proxies: a forged Forwarded is ignored", "203.0.113.5:4711", nil, []string{"for=198.51.100.7"}, nil, "203.0.113.5"},
		{"a direct client, not a trusted proxy, cannot forge", "203.0.113.5:4711", []string{"10.0.0.9"}, []string{"for=10.0.0.9"}, proxies, "203.0.113.5"},
		{"a trusted proxy, one hop", "10.0.0.1:4711", []string{"198.51.100.7"}, nil, proxies, "198.51.100.7"},
		{"a trusted proxy, a forged entry on the left", "10.0.0.1:4711", []string{"1.2.3.4, 198.51.100.7"}, nil, proxies, "198.51.100.7"},
		{"two trusted hops", "10.0.0.2:4711", []string{"198.51.100.7, 10.0.0.1"}, nil, proxies, "198.51.100.7"},
		{"a trusted proxy by its single address", "127.0.0.1:4711", []string{"198.51.100.7"}, nil, proxies, "198.51.100.7"},
		{"an untrusted middle hop is the client", "10.0.0.2:4711", []string{"198.51.100.7, 203.0.113.9, 10.0.0.1"}, nil, proxies, "203.0.113.9"},
		{"every hop trusted: the leftmost", "10.0.0.2:4711", []string{"10.0.0.3, 10.0.0.1"}, nil, proxies, "10.0.0.3"},
		{"an empty header: the peer", "10.0.0.1:4711", []string{""}, nil, proxies, "10.0.0.1"},
		{"two header lines, in order", "10.0.0.1:4711", []string{"198.51.100.7", "10.0.0.3"}, nil, proxies, "198.51.100.7"},
		{"entries with ports", "10.0.0.1:4711", []string{"198.51.100.7:5000, 10.0.0.3:80"}, nil, proxies, "198.51.100.7"},
		{"garbage on the right: the peer", "10.0.0.1:4711", []string{"198.51.100.7, not an ip"}, nil, proxies, "10.0.0.1"},
		{"garbage behind a trusted hop: that hop", "10.0.0.1:4711", []string{"198.51.100.7, garbage, 10.0.0.3"}, nil, proxies, "10.0.0.3"},
		{"garbage left of the client does not matter", "10.0.0.1:4711", []string{"garbage, 198.51.100.7"}, nil, proxies, "198.51.100.7"},
		{"an empty entry stops the walk", "10.0.0.1:4711", []string{"198.51.100.7, , 10.0.0.3"}, nil, proxies, "10.0.0.3"},
		{"IPv6 peer", "[2001:db8::1]:4711", nil, nil, nil, "2001:db8::1"},
		{"IPv6 trusted proxy and client", "[fd00::2]:4711", []string{"2001:db8::7, fd00::1"}, nil, proxies, "2001:db8::7"},
		{"IPv6 with brackets and a port", "10.0.0.1:4711", []string{"[2001:db8::7]:4711"}, nil, proxies, "2001:db8::7"},
		{"an IPv4-mapped peer is its IPv4 address", "[::ffff:10.0.0.1]:4711", []string{"198.51.100.7"}, nil, proxies, "198.51.100.7"},
		{"an IPv4-mapped entry", "10.0.0.1:4711", []string{"::ffff:198.51.100.7"}, nil, proxies, "198.51.100.7"},
		{"Forwarded, one hop", "10.0.0.1:4711", nil, []string{"for=198.51.100.7"}, proxies, "198.51.100.7"},
		{"Forwarded, with other parameters and two hops", "10.0.0.1:4711", nil,
			[]string{"for=192.0.2.60;proto=http;by=10.0.0.2, proto=https;For=10.0.0.2"}, proxies, "192.0.2.60"},
		{"Forwarded, quoted IPv6 with a port", "10.0.0.1:4711", nil, []string{`for="[2001:db8:cafe::17]:4711"`}, proxies, "2001:db8:cafe::17"},
		{"Forwarded, quoted IPv6", "10.0.0.1:4711", nil, []string{`for="[2001:db8:cafe::17]"`}, proxies, "2001:db8:cafe::17"},
		{"Forwarded, quoted IPv4 with a port", "10.0.0.1:4711", nil, []string{`for="198.51.100.7:4711"`}, proxies, "198.51.100.7"},
		{"Forwarded, a comma in a quoted value", "10.0.0.1:4711", nil, []string{`for=198.51.100.7;ext="a, b", for=10.0.0.3`}, proxies, "198.51.100.7"},
		{"Forwarded, two lines", "10.0.0.1:4711", nil, []string{"for=198.51.100.7", "for=10.0.0.3"}, proxies, "198.51.100.7"},
		{"Forwarded, unknown: the peer", "10.0.0.1:4711", nil, []string{"for=198.51.100.7, for=unknown"}, proxies, "10.0.0.1"},
		{"Forwarded, an obfuscated name: the peer", "10.0.0.1:4711", nil, []string{"for=_hidden"}, proxies, "10.0.0.1"},
		{"Forwarded, an element without for: the peer", "10.0.0.1:4711", nil, []string{"for=198.51.100.7, proto=https"}, proxies, "10.0.0.1"},
		{"Forwarded, unbracketed IPv6 is read as an address (no port)", "10.0.0.1:4711", nil, []string{`for="2001:db8::17:4711"`}, proxies, "2001:db8::17:4711"},
		{"both headers: X-Forwarded-For wins", "10.0.0.1:4711", []string{"198.51.100.7"}, []string{"for=203.0.113.1"}, proxies, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.fwd {
				r.Header.Add("Forwarded", v)
			}
			if got := clientIP(r, tc.trusted); got.String() != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"127.0.0.1", "10.1.2.3/8", "::1", "fd00::/8", "::ffff:192.168.0.0/112"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[127.0.0.1/32 10.0.0.0/8 ::1/128 fd00::/8 192.168.0.0/16]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "10.0.0", "10.0.0.1/", "*"} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), strconv.Quote(bad)) {
				t.Fatalf("error %v, want one that names %q", err, bad)
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
