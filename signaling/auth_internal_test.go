package signaling

import (
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
