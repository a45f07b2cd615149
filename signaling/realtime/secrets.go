package realtime

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client secrets: a backend that holds a key asks for a short-lived one
// for a browser (POST /v1/realtime/client_secrets). The key is a signed
// token (signaling.SignToken) with the expiry asked for, as an ephemeral
// key ("ek_" + token), which the gateway takes as any signed token.

const (
	defaultSecretTTL = 10 * time.Minute
	minSecretTTL     = 10 * time.Second
	maxSecretTTL     = 2 * time.Hour
	maxSecretBody    = 64 << 10
)

// ServeSecrets answers POST /v1/realtime/client_secrets: the caller's own
// key is checked (Gateway.Authenticate); the answer is {value,
// expires_at, session}. With authentication off any key works, and the
// value is a random one; with static tokens only (no -auth-secret) no key
// can be minted: 400.
func (s *Server) ServeSecrets(w http.ResponseWriter, r *http.Request) {
	if !s.gw.Authenticate(w, r) {
		return // refused, and told why
	}
	var body struct {
		ExpiresAfter *struct {
			Anchor  string `json:"anchor"`
			Seconds int    `json:"seconds"`
		} `json:"expires_after"`
		Session json.RawMessage `json:"session"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSecretBody+1))
	if err == nil && len(b) > maxSecretBody {
		err = fmt.Errorf("the body is over %d bytes", maxSecretBody)
	}
	if err == nil && len(b) > 0 {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		secretError(w, http.StatusBadRequest, "invalid_value", "the body must be {\"expires_after\": {\"anchor\": \"created_at\", \"seconds\": n}, \"session\": {…}}: "+err.Error())
		return
	}
	ttl := defaultSecretTTL
	if e := body.ExpiresAfter; e != nil && e.Seconds != 0 {
		ttl = time.Duration(e.Seconds) * time.Second
		if ttl < minSecretTTL || ttl > maxSecretTTL {
			secretError(w, http.StatusBadRequest, "invalid_value", fmt.Sprintf("expires_after.seconds %d: from 10 to 7200", e.Seconds))
			return
		}
	}
	value, expires, ok := s.mint(ttl)
	if !ok {
		secretError(w, http.StatusBadRequest, "unsupported",
			"client secrets are signed tokens: the server needs -auth-secret (with static -auth-tokens only, none can be minted)")
		return
	}
	c := newConf("", "", 600*time.Millisecond, 400*time.Millisecond)
	if !isNull(body.Session) {
		if param, bad := c.update(body.Session, 600*time.Millisecond, 400*time.Millisecond, s.cfg.Tools); bad != "" {
			secretError(w, http.StatusBadRequest, "invalid_value", param+": "+bad)
			return
		}
	}
	c.ID = "sess_pending"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"value": value, "expires_at": expires.Unix(), "session": c.wire(false),
	})
}

// mint is a key valid for ttl and its expiry, or false when none can be
// made.
func (s *Server) mint(ttl time.Duration) (string, time.Time, bool) {
	if tok, expires, ok := s.gw.Mint("client_secret", ttl); ok {
		return "ek_" + tok, expires, true
	}
	if s.gw.AuthOn() {
		return "", time.Time{}, false
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ek_open_" + hex.EncodeToString(b[:]), time.Now().Add(ttl), true // any key passes: authentication is off
}

func secretError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": code, "message": msg}})
}
