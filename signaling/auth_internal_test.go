package signaling

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Static tokens go through the constant-time compare, every configured
// one each time (no early exit), as fixed-length digests (no length
// leak); signatures go through hmac.Equal.
func TestAuthUsesConstantTimeCompares(t *testing.T) {
	origCT, origMAC := ctCompare, macEqual
	t.Cleanup(func() { ctCompare, macEqual = origCT, origMAC })
	var calls, lengths []int
	ctCompare = func(x, y []byte) int {
		calls = append(calls, 1)
		lengths = append(lengths, len(x), len(y))
		if string(x) == string(y) {
			return 1
		}
		return 0
	}
	macs := 0
	macEqual = func(x, y []byte) bool { macs++; return string(x) == string(y) }

	now := time.Unix(1000, 0)
	secret := []byte("k")
	a := AuthConfig{Tokens: []string{"first", "second-token", "third-and-longest-token"}, Secret: secret}
	for _, tc := range []struct {
		name string
		tok  string
		ok   bool
	}{
		{"the first token", "first", true},
		{"the last token", "third-and-longest-token", true},
		{"a wrong token of another length", "x", false},
		{"a prefix of a token", "second", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, lengths = nil, nil
			r := httptest.NewRequest("GET", "/ws", nil)
			r.Header.Set("Authorization", "Bearer "+tc.tok)
			if err := newVerifier(a).check(r, now); (err == nil) != tc.ok {
				t.Fatalf("authenticate: %v", err)
			}
			if len(calls) != len(a.Tokens) {
				t.Fatalf("%d constant-time compares, want one per configured token (%d)", len(calls), len(a.Tokens))
			}
			for _, n := range lengths {
				if n != 32 {
					t.Fatalf("compared %d bytes, not a SHA-256 digest: lengths %v", n, lengths)
				}
			}
		})
	}
	r := httptest.NewRequest("GET", "/ws?access_token="+SignToken(secret, "s", time.Minute, now), nil)
	if err := newVerifier(a).check(r, now); err != nil || macs != 1 {
		t.Fatalf("signed token: %v, %d hmac.Equal calls", err, macs)
	}
}

// A protocol's own place for the token (Protocol.Token) is looked at only
// when the header and the query carry none, and what it finds is checked
// as any token is: a static one, a signed one, a wrong one.
func TestProtocolToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	secret := []byte("k")
	v := newVerifier(AuthConfig{Tokens: []string{"static"}, Secret: secret})
	fromHeader := func(r *http.Request) string { return r.Header.Get("X-Token") }
	for _, tc := range []struct {
		name, header, query, proto string
		ok                         bool
	}{
		{"static in the protocol's place", "", "", "static", true},
		{"signed in the protocol's place", "", "", SignToken(secret, "s", time.Minute, now), true},
		{"wrong in the protocol's place", "", "", "nope", false},
		{"none anywhere", "", "", "", false},
		{"the header wins over the protocol's place", "nope", "", "static", false},
		{"the query wins over the protocol's place", "", "nope", "static", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/realtime?access_token="+tc.query, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", "Bearer "+tc.header)
			}
			r.Header.Set("X-Token", tc.proto)
			if err := v.checkWith(r, fromHeader, now); (err == nil) != tc.ok {
				t.Fatalf("check: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// A signed token as an ephemeral key ("ek_" + token) is the token.
func TestEphemeralPrefix(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	secret := []byte("k")
	v := newVerifier(AuthConfig{Secret: secret})
	for _, tc := range []struct {
		tok string
		ok  bool
	}{
		{"ek_" + SignToken(secret, "s", time.Minute, now), true},
		{SignToken(secret, "s", time.Minute, now), true},
		{"ek_" + SignToken([]byte("other"), "s", time.Minute, now), false},
		{"ek_nonsense", false},
	} {
		r := httptest.NewRequest("GET", "/v1/realtime", nil)
		r.Header.Set("Authorization", "Bearer "+tc.tok)
		if err := v.check(r, now); (err == nil) != tc.ok {
			t.Fatalf("%q: %v, want ok %v", tc.tok, err, tc.ok)
		}
	}
}
