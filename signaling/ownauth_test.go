package signaling_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/signaling"
)

type nopHandler struct{}

func (nopHandler) Frame(int, []byte) {}
func (nopHandler) Pong()             {}

// A protocol that authenticates its clients itself (Protocol.Auth) is not
// asked for the gateway's tokens, even with them on; its refusal is a 403
// that names the reason, and a wrong signature spends the address's
// failed authentications like a wrong token (past the burst: 429).
func TestProtocolsOwnAuth(t *testing.T) {
	gw := signaling.NewGateway(signaling.Config{
		// Tokens on, so that the test sees the protocol's check replace
		// them; a burst of 2 failures, so that the limiter shows.
		Auth: signaling.AuthConfig{Tokens: []string{"secret-token"}}, AuthFailBurst: 2,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ep := gw.Endpoint(signaling.Protocol{
		CloseCode: func(signaling.Reason) int { return websocket.CloseNormalClosure },
		Auth: func(r *http.Request) error {
			if r.Header.Get("X-Sig") == "good" {
				return nil
			}
			return errors.New("the signature is not valid")
		},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := ep.Accept(w, r); s != nil {
			ep.Serve(s, func() { s.Serve(nopHandler{}) })
		}
	}))
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	dial := func(sig string) (*http.Response, error) {
		h := http.Header{}
		if sig != "" {
			h.Set("X-Sig", sig)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(url, h)
		if ws != nil {
			ws.Close()
		}
		return resp, err
	}
	if resp, err := dial("good"); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("a good signature, no token: %v %v", resp, err)
	}
	for i, want := range []int{http.StatusForbidden, http.StatusForbidden, http.StatusTooManyRequests} {
		resp, err := dial("bad")
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Fatalf("bad signature %d: %v %v; want %d", i, resp, err, want)
		}
		body, _ := io.ReadAll(resp.Body)
		if want == http.StatusForbidden && !strings.HasPrefix(string(body), "unauthorized: the signature is not valid") {
			t.Fatalf("refusal %q", body)
		}
	}
	if resp, err := dial("good"); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("a good signature after the failures: %v %v", resp, err)
	}
	ctx := t.Context()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFromTrustedProxy(t *testing.T) {
	proxies, err := signaling.ParseTrustedProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	gw := signaling.NewGateway(signaling.Config{TrustedProxies: proxies}, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		remote string
		want   bool
	}{{"10.1.2.3:4000", true}, {"192.0.2.1:4000", false}, {"[::ffff:10.0.0.1]:1", true}, {"pipe", false}} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if got := gw.FromTrustedProxy(r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.remote, got, tc.want)
		}
	}
}
