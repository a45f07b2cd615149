package parley_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/internal/testkit/wsclient"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/parley"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tryDial opens /ws with headers; on refusal it returns the HTTP status,
// the body and the Retry-After header.
func tryDial(t *testing.T, url string, h http.Header) (*websocket.Conn, int, string, string) {
	t.Helper()
	return tryDialWith(t, websocket.DefaultDialer, url, h)
}

func tryDialWith(t *testing.T, d *websocket.Dialer, url string, h http.Header) (*websocket.Conn, int, string, string) {
	t.Helper()
	ws, resp, err := d.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
		return ws, http.StatusSwitchingProtocols, "", ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return nil, resp.StatusCode, string(b), resp.Header.Get("Retry-After")
}

// refusedCount is parley_ws_refused_total{reason}. The counters are the
// process's, so tests compare before and after.
func refusedCount(t *testing.T, reason string) float64 {
	t.Helper()
	return metricValue(t, "parley_ws_refused_total", "reason", reason)
}

// checkRefusedLabels fails if parley_ws_refused_total has a label other
// than reason, or a reason outside the fixed set (never an address).
func checkRefusedLabels(t *testing.T) {
	t.Helper()
	known := map[string]bool{"unauthorized": true, "token_expired": true, "origin": true, "ip_connections": true, "ip_rate": true, "auth_rate": true, "shutdown": true}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "parley_ws_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "reason" || !known[l.GetValue()] {
					t.Fatalf("parley_ws_refused_total has the label %s=%q", l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestAuthBeforeUpgrade(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	secret := []byte("a secret of the backend")
	r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{
		Auth: signaling.AuthConfig{Tokens: []string{"static-one", "static-two"}, Secret: secret},
		Now:  clock.Now,
	}})
	good := signaling.SignToken(secret, "alice", time.Minute, clock.Now())
	expired := signaling.SignToken(secret, "alice", time.Minute, clock.Now().Add(-2*time.Minute))
	forged := signaling.SignToken([]byte("another secret"), "alice", time.Minute, clock.Now())
	// The same signature on a payload with a later expiry.
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.Split(signaling.SignToken(secret, "alice", time.Hour, clock.Now()), ".")[1] + "." + parts[2]
	tests := []struct {
		name    string
		query   string
		header  http.Header
		status  int
		inBody  string
		session bool
	}{
		{"no token", "", nil, 401, "unauthorized: a token is required", false},
		{"wrong bearer token", "", bearer("static-three"), 401, "unauthorized: the token is not valid", false},
		{"a prefix of a token", "", bearer("static"), 401, "unauthorized", false},
		{"bearer token in the header", "", bearer("static-two"), 101, "", true},
		{"bearer token in the query", "?access_token=static-one", nil, 101, "", true},
		{"signed token", "", bearer(good), 101, "", true},
		{"signed token in the query", "?access_token=" + good, nil, 101, "", true},
		{"expired signed token", "", bearer(expired), 401, "token_expired: the token has expired", false},
		{"signed with another secret", "", bearer(forged), 401, "unauthorized: the token is not valid", false},
		{"tampered payload", "", bearer(tampered), 401, "unauthorized: the token is not valid", false},
		{"garbage after the prefix", "", bearer("pt1.!!!"), 401, "unauthorized", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason, _, _ := strings.Cut(tc.inBody, ":")
			before := refusedCount(t, reason)
			ws, status, body, _ := tryDial(t, r.URL+tc.query, tc.header)
			if status != tc.status || !strings.Contains(body, tc.inBody) {
				t.Fatalf("status %d, body %q; want %d with %q", status, body, tc.status, tc.inBody)
			}
			if tc.status == http.StatusUnauthorized {
				if got := refusedCount(t, reason) - before; got != 1 {
					t.Fatalf("parley_ws_refused_total{reason=%q} went up by %v, want 1", reason, got)
				}
			}
			if tc.session {
				c := wsclient.Wrap(t, ws)
				c.Hello()
			}
		})
	}
	// A token valid now is refused once its time has passed.
	clock.Add(61 * time.Second)
	if _, status, body, _ := tryDial(t, r.URL, bearer(good)); status != 401 || !strings.Contains(body, "token_expired") {
		t.Fatalf("after expiry: %d %q", status, body)
	}
	checkRefusedLabels(t)
}

func TestPerIPCaps(t *testing.T) {
	t.Run("open connections", func(t *testing.T) {
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{MaxConnsPerIP: 3}})
		var open []*websocket.Conn
		for i := 0; i < 3; i++ {
			ws, status, body, _ := tryDial(t, r.URL, nil)
			if ws == nil {
				t.Fatalf("connection %d refused: %d %s", i+1, status, body)
			}
			open = append(open, ws)
		}
		before := refusedCount(t, "ip_connections")
		_, status, body, retry := tryDial(t, r.URL, nil)
		if status != http.StatusTooManyRequests || !strings.HasPrefix(body, "ip_connections:") || retry == "" {
			t.Fatalf("fourth connection: %d %q Retry-After %q", status, body, retry)
		}
		if got := refusedCount(t, "ip_connections") - before; got != 1 {
			t.Fatalf("ip_connections refusals counted: +%v", got)
		}
		// One closes: a new one is let in once the server has let go of it.
		open[0].Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ws, _, _, _ := tryDial(t, r.URL, nil)
			if ws != nil {
				wsclient.Wrap(t, ws).Hello()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a closed connection was never released")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		// A frozen clock: were there a rate cap, its bucket would never
		// refill. Behind a proxy or a NAT every client has one address.
		clock := &fakeClock{t: time.Unix(1000, 0)}
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{Now: clock.Now}})
		var open []*websocket.Conn
		for i := 0; i < 300; i++ {
			ws, status, body, _ := tryDial(t, r.URL, nil)
			if ws == nil {
				t.Fatalf("connection %d from one address refused by default: %d %s", i+1, status, body)
			}
			open = append(open, ws)
		}
		for _, ws := range open {
			ws.Close()
		}
	})
	t.Run("new connections per second", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{ConnectRatePerIP: 1, ConnectBurst: 2, Now: clock.Now}})
		for i := 0; i < 2; i++ {
			if ws, status, body, _ := tryDial(t, r.URL, nil); ws == nil {
				t.Fatalf("connection %d of the burst refused: %d %s", i+1, status, body)
			}
		}
		before := refusedCount(t, "ip_rate")
		_, status, body, retry := tryDial(t, r.URL, nil)
		if status != http.StatusTooManyRequests || !strings.HasPrefix(body, "ip_rate:") || retry != "1" {
			t.Fatalf("past the burst: %d %q Retry-After %q", status, body, retry)
		}
		if got := refusedCount(t, "ip_rate") - before; got != 1 {
			t.Fatalf("ip_rate refusals counted: +%v", got)
		}
		clock.Add(time.Second)
		if ws, status, body, _ := tryDial(t, r.URL, nil); ws == nil {
			t.Fatalf("a second later: %d %s", status, body)
		}
	})
	checkRefusedLabels(t)
}

// fromAddress dials from another loopback address (all of 127/8 is lo's),
// to be another client address.
func fromAddress(ip string) *websocket.Dialer {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &websocket.Dialer{NetDial: nd.Dial, HandshakeTimeout: 10 * time.Second}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// expectStatus dials and fails unless the answer has the status and, for
// a refusal, a body starting with the reason.
func expectStatus(t *testing.T, d *websocket.Dialer, url string, h http.Header, status int, reason string) (*websocket.Conn, string) {
	t.Helper()
	ws, got, body, retry := tryDialWith(t, d, url, h)
	if got != status || !strings.HasPrefix(body, reason) {
		t.Fatalf("status %d %q, want %d %s", got, body, status, reason)
	}
	return ws, retry
}

// Failed authentications are counted per client address whenever
// authentication is on (with the default budget: 10, then 1 a second).
// Past the budget a wrong token gets 429 auth_rate; a good token from the
// same address still passes, as a proxy's good clients share its address.
func TestFailedAuthLimiter(t *testing.T) {
	secret := []byte("the backend's secret")
	t.Run("wrong tokens are throttled, good ones pass", func(t *testing.T) {
		// A frozen clock: the budget refills only when the test says so.
		clock := &fakeClock{t: time.Unix(1000, 0)}
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{
			Auth: signaling.AuthConfig{Tokens: []string{"the-token"}, Secret: secret}, Now: clock.Now,
		}})
		d := websocket.DefaultDialer
		forged := signaling.SignToken([]byte("a guessed secret"), "mallory", time.Hour, clock.Now())
		kinds := []http.Header{nil, bearer("guess"), bearer(forged), bearer("pt1.x.y")}
		for i := 0; i < 10; i++ { // ten failures, of four kinds
			expectStatus(t, d, r.URL, kinds[i%len(kinds)], http.StatusUnauthorized, "unauthorized:")
		}
		before := refusedCount(t, "auth_rate")
		if _, retry := expectStatus(t, d, r.URL, bearer("guess"), http.StatusTooManyRequests, "auth_rate:"); retry != "1" {
			t.Fatalf("Retry-After %q, want 1", retry)
		}
		expectStatus(t, d, r.URL, nil, http.StatusTooManyRequests, "auth_rate:")
		if got := refusedCount(t, "auth_rate") - before; got != 2 {
			t.Fatalf("auth_rate refusals counted: +%v, want 2", got)
		}

		// Meanwhile, good tokens from the same address pass.
		good := signaling.SignToken(secret, "alice", time.Hour, clock.Now())
		for _, h := range []http.Header{bearer("the-token"), bearer(good)} {
			ws, _ := expectStatus(t, d, r.URL, h, http.StatusSwitchingProtocols, "")
			c := wsclient.Wrap(t, ws)
			c.Hello()
			c.Send(map[string]any{"type": "text", "text": "hi"})
			for ev := c.Next(); ev.Type != "reply.done"; ev = c.Next() {
				if ev.Type == "error" {
					t.Fatalf("a good client of a throttled address: %s", ev.Raw)
				}
			}
		}
		// Another address has its own budget.
		expectStatus(t, fromAddress("127.0.0.2"), r.URL, bearer("guess"), http.StatusUnauthorized, "unauthorized:")

		// The budget refills with the clock, a failure a second. An expired
		// token is not a guess (we signed it): it is told so, and spends
		// nothing.
		clock.Add(time.Second)
		expired := signaling.SignToken(secret, "alice", time.Second, clock.Now().Add(-time.Minute))
		expectStatus(t, d, r.URL, bearer(expired), http.StatusUnauthorized, "token_expired:")
		expectStatus(t, d, r.URL, bearer("guess"), http.StatusUnauthorized, "unauthorized:")
		expectStatus(t, d, r.URL, bearer("guess"), http.StatusTooManyRequests, "auth_rate:")
		expectStatus(t, d, r.URL, bearer(expired), http.StatusUnauthorized, "token_expired:")
		clock.Add(time.Minute)
		for i := 0; i < 10; i++ {
			expectStatus(t, d, r.URL, bearer("guess"), http.StatusUnauthorized, "unauthorized:")
		}
		expectStatus(t, d, r.URL, bearer("guess"), http.StatusTooManyRequests, "auth_rate:")
	})
	t.Run("behind a trusted proxy, per client", func(t *testing.T) {
		// The test client is the proxy: 127.0.0.1 is trusted, and the
		// header it sends names the client.
		clock := &fakeClock{t: time.Unix(1000, 0)}
		proxies, _ := signaling.ParseTrustedProxies([]string{"127.0.0.1"})
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{
			Auth: signaling.AuthConfig{Tokens: []string{"the-token"}}, TrustedProxies: proxies, Now: clock.Now,
		}})
		d := websocket.DefaultDialer
		via := func(client, tok string) http.Header {
			h := bearer(tok)
			h.Set("X-Forwarded-For", client)
			return h
		}
		for i := 0; i < 10; i++ {
			expectStatus(t, d, r.URL, via("198.51.100.1", "guess"), http.StatusUnauthorized, "unauthorized:")
		}
		expectStatus(t, d, r.URL, via("198.51.100.1", "guess"), http.StatusTooManyRequests, "auth_rate:")
		expectStatus(t, d, r.URL, via("198.51.100.2", "guess"), http.StatusUnauthorized, "unauthorized:")
		expectStatus(t, d, r.URL, via("198.51.100.1", "the-token"), http.StatusSwitchingProtocols, "")
		// A direct client (not a trusted proxy) cannot spend another's
		// budget, nor escape its own, by naming an address.
		for i := 0; i < 10; i++ {
			expectStatus(t, fromAddress("127.0.0.2"), r.URL, via("198.51.100.3", "guess"), http.StatusUnauthorized, "unauthorized:")
		}
		expectStatus(t, fromAddress("127.0.0.2"), r.URL, via("198.51.100.4", "guess"), http.StatusTooManyRequests, "auth_rate:")
		expectStatus(t, d, r.URL, via("198.51.100.3", "guess"), http.StatusUnauthorized, "unauthorized:")
	})
	t.Run("off when authentication is off", func(t *testing.T) {
		// The default: no tokens, /ws open. Whatever a request carries,
		// it is let in, however many there are on a frozen clock.
		clock := &fakeClock{t: time.Unix(1000, 0)}
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{Now: clock.Now}})
		before := refusedCount(t, "auth_rate") + refusedCount(t, "unauthorized")
		for i := 0; i < 30; i++ {
			ws, _ := expectStatus(t, websocket.DefaultDialer, r.URL, bearer("anything"), http.StatusSwitchingProtocols, "")
			ws.Close()
		}
		if got := refusedCount(t, "auth_rate") + refusedCount(t, "unauthorized") - before; got != 0 {
			t.Fatalf("%v refusals with authentication off", got)
		}
	})
	t.Run("with the per-IP rate set, guesses spend it too", func(t *testing.T) {
		// The opt-in connect rate (off by default) is checked first:
		// every request spends it, a guess like any other.
		clock := &fakeClock{t: time.Unix(1000, 0)}
		r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{
			Auth:             signaling.AuthConfig{Tokens: []string{"the-token"}},
			ConnectRatePerIP: 1, ConnectBurst: 3, Now: clock.Now,
		}})
		for i := 0; i < 3; i++ {
			expectStatus(t, websocket.DefaultDialer, r.URL, bearer("guess"), http.StatusUnauthorized, "unauthorized:")
		}
		expectStatus(t, websocket.DefaultDialer, r.URL, bearer("the-token"), http.StatusTooManyRequests, "ip_rate:")
		clock.Add(time.Second)
		expectStatus(t, websocket.DefaultDialer, r.URL, bearer("the-token"), http.StatusSwitchingProtocols, "")
	})
	checkRefusedLabels(t)
}

// A session past its most turns gets a clear error, and the socket and
// the session go on (they can still be read and resumed).
func TestTurnLimit(t *testing.T) {
	r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{store: session.Config{MaxTurns: 2}})
	c := dial(t, r.URL)
	c.Hello()
	for i := 0; i < 2; i++ {
		c.Send(map[string]any{"type": "text", "text": "hi"})
		for ev := c.Next(); ev.Type != "reply.done"; ev = c.Next() {
			if ev.Type == "error" {
				t.Fatalf("turn %d: %s", i+1, ev.Raw)
			}
		}
	}
	c.Send(map[string]any{"type": "text", "text": "one more"})
	ev := c.Next()
	if ev.Type != "error" || ev.Code != "turn_limit" || !strings.Contains(ev.Message, "2 turns") {
		t.Fatalf("third turn: %s", ev.Raw)
	}
	c.Send(map[string]any{"type": "text", "text": "and another"})
	if ev := c.Next(); ev.Code != "turn_limit" {
		t.Fatalf("the socket did not go on: %s", ev.Raw)
	}
}

// No token or secret reaches the logs, whatever the outcome.
func TestTokensAreNotLogged(t *testing.T) {
	var logs bytes.Buffer
	secret := []byte("the-backend-secret")
	clock := &fakeClock{t: time.Unix(5000, 0)}
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw := signaling.NewGateway(signaling.Config{
		Auth: signaling.AuthConfig{Tokens: []string{"static-token-value"}, Secret: secret}, Now: clock.Now,
	}, log)
	srv := parley.NewServer(parley.Config{}, gw, nil, nil, nil, log)
	expired := signaling.SignToken(secret, "bob", time.Second, clock.Now().Add(-time.Hour))
	for _, tok := range []string{"static-token-valuX", expired, "pt1.garbage.garbage"} {
		for _, r := range []*http.Request{
			httptest.NewRequest("GET", "/ws", nil),
			httptest.NewRequest("GET", "/ws?access_token="+tok, nil),
		} {
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("%q: %d", tok, w.Code)
			}
			if strings.Contains(w.Body.String(), tok) {
				t.Fatalf("the answer repeats the token: %s", w.Body.String())
			}
		}
	}
	// Past the address's budget of failures (four were spent above), the
	// refusals are auth_rate and say nothing of the token either.
	for i := 0; i < 8; i++ {
		r := httptest.NewRequest("GET", "/ws?access_token=static-token-valuZ", nil)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if i >= 6 && (w.Code != http.StatusTooManyRequests || !strings.HasPrefix(w.Body.String(), "auth_rate:")) {
			t.Fatalf("failure %d: %d %q", 4+i+1, w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), "static-token-valu") {
			t.Fatalf("the answer repeats the token: %s", w.Body.String())
		}
	}
	if !strings.Contains(logs.String(), `msg="auth failed"`) || !strings.Contains(logs.String(), "reason=token_expired") ||
		!strings.Contains(logs.String(), `msg="failed authentications throttled"`) || !strings.Contains(logs.String(), "reason=auth_rate") {
		t.Fatalf("auth failures are not logged with their reason:\n%s", logs.String())
	}
	for _, secretish := range []string{"static-token-valu", string(secret), expired[:20], "garbage"} {
		if strings.Contains(logs.String(), secretish) {
			t.Fatalf("the logs hold %q:\n%s", secretish, logs.String())
		}
	}
}

// Browser origins: the server's own host by default, a list, or any.
func TestAllowedOrigins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allowed []string
		origin  string // "self": the server's own URL
		ok      bool
	}{
		{"no Origin header (not a browser)", nil, "", true},
		{"the server's own page", nil, "self", true},
		{"another site", nil, "https://evil.example", false},
		{"a listed origin", []string{"https://app.example"}, "https://app.example", true},
		{"a listed origin, trailing slash in the list", []string{"https://app.example/"}, "https://app.example", true},
		{"not in the list", []string{"https://app.example"}, "https://app.example.evil", false},
		{"any", []string{"*"}, "https://anything.example", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{AllowedOrigins: tc.allowed}})
			h := http.Header{}
			switch tc.origin {
			case "":
			case "self":
				h.Set("Origin", "http"+strings.TrimPrefix(strings.TrimSuffix(r.URL, "/ws"), "ws"))
			default:
				h.Set("Origin", tc.origin)
			}
			before := refusedCount(t, "origin")
			ws, status, body, _ := tryDial(t, r.URL, h)
			want := 1.0
			if tc.ok {
				want = 0
			}
			if got := refusedCount(t, "origin") - before; got != want {
				t.Fatalf("origin refusals counted: +%v, want +%v", got, want)
			}
			if tc.ok != (ws != nil) {
				t.Fatalf("origin %q: status %d %q", h.Get("Origin"), status, body)
			}
			if !tc.ok && (status != http.StatusForbidden || !strings.HasPrefix(body, "origin:")) {
				t.Fatalf("refusal: %d %q", status, body)
			}
		})
	}
}
