package realtime_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/signaling"
)

// postSecret asks for a client secret with key, and returns the status
// and the decoded answer.
func postSecret(t *testing.T, s *server, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.http.URL+"/v1/realtime/client_secrets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A backend with the server's key gets a short-lived key for a browser:
// a signed token with the expiry it asked for, as an ephemeral key, which
// opens a session over the key subprotocol until it expires.
func TestClientSecrets(t *testing.T) {
	clk := testkit.NewClock()
	// Authentication on, with a secret to sign with: what client secrets
	// are (the default, off, is TestClientSecretsOpen's).
	s := start(t, &fakes.Echo{}, opts{gateway: signaling.Config{Now: clk.Now,
		Auth: signaling.AuthConfig{Tokens: []string{"sk-backend"}, Secret: []byte("signing key")}}})
	code, got := postSecret(t, s, "sk-backend", `{"expires_after": {"anchor": "created_at", "seconds": 60}, "session": {"type": "realtime", "instructions": "hi"}}`)
	value, _ := got["value"].(string)
	if code != 200 || !strings.HasPrefix(value, "ek_") || got["expires_at"] != float64(clk.Now().Add(time.Minute).Unix()) {
		t.Fatalf("%d %v", code, got)
	}
	if sess, _ := got["session"].(map[string]any); sess["instructions"] != "hi" {
		t.Fatalf("session %v", got["session"])
	}
	dialKey := func(key string) (*http.Response, error) {
		d := websocket.Dialer{Subprotocols: []string{"realtime", "openai-insecure-api-key." + key}}
		ws, resp, err := d.Dial(s.URL, nil)
		if err == nil {
			ws.Close()
		}
		return resp, err
	}
	if _, err := dialKey(value); err != nil {
		t.Fatalf("the client secret: %v", err)
	}
	clk.Advance(61 * time.Second)
	if resp, err := dialKey(value); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an expired client secret: %v %v", resp, err)
	}
	for _, tc := range []struct {
		name, key, body string
		status          int
	}{
		{"a wrong key", "sk-wrong", `{}`, http.StatusUnauthorized},
		{"too long", "sk-backend", `{"expires_after": {"anchor": "created_at", "seconds": 86400}}`, http.StatusBadRequest},
		{"not JSON", "sk-backend", `{`, http.StatusBadRequest},
		{"a bad session", "sk-backend", `{"session": {"output_modalities": ["smell"]}}`, http.StatusBadRequest},
		{"the default expiry", "sk-backend", ``, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, got := postSecret(t, s, tc.key, tc.body); code != tc.status {
				t.Fatalf("%d %v, want %d", code, got, tc.status)
			}
		})
	}
}

// With authentication off (the default), a client secret is any key, as
// every key is; with static tokens and no secret, none can be minted.
func TestClientSecretsOpen(t *testing.T) {
	s := start(t, &fakes.Echo{}, opts{})
	code, got := postSecret(t, s, "anything", `{}`)
	if v, _ := got["value"].(string); code != 200 || !strings.HasPrefix(v, "ek_") {
		t.Fatalf("%d %v", code, got)
	}
	// Static tokens only: a setting this test is about.
	st := start(t, &fakes.Echo{}, opts{gateway: signaling.Config{Auth: signaling.AuthConfig{Tokens: []string{"sk"}}}})
	if code, got := postSecret(t, st, "sk", `{}`); code != http.StatusBadRequest || !strings.Contains(jsonOf(got), "auth-secret") {
		t.Fatalf("%d %v", code, got)
	}
}
