package rtc

import (
	"net"
	"testing"
)

// Which clients get the API with loopback candidates, per setting.
func TestLoopbackCandidatesPerClient(t *testing.T) {
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000} }
	local := []net.Addr{addr("127.0.0.1"), addr("127.8.9.10"), addr("::1"), addr("::ffff:127.0.0.1")}
	remote := []net.Addr{addr("192.0.2.7"), addr("2001:db8::7")}
	for _, tc := range []struct {
		mode          Loopback
		local, remote bool // loopback candidates for a client on this host, for one elsewhere
	}{
		{LoopbackAuto, true, false},
		{LoopbackOn, true, true},
		{LoopbackOff, false, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			apis, err := NewAPIs(Config{Loopback: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			withLoopback := func(a net.Addr) bool { return apis.WithLoopback(apis.ForClient(a)) }
			for _, a := range local {
				if got := withLoopback(a); got != tc.local {
					t.Errorf("client %v: loopback candidates %v, want %v", a, got, tc.local)
				}
			}
			for _, a := range remote {
				if got := withLoopback(a); got != tc.remote {
					t.Errorf("client %v: loopback candidates %v, want %v", a, got, tc.remote)
				}
			}
		})
	}
}
