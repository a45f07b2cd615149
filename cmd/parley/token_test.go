package main

import (
	"bytes"
	"strings"
	"testing"
)

// "parley token" mints a signed token that the server's signature check
// would take: pt1.<claims>.<signature>, with the subject and expiry asked.
func TestMintToken(t *testing.T) {
	env := func(k string) string {
		if k == "PARLEY_AUTH_SECRET" {
			return "s3cret"
		}
		return ""
	}
	var out, errOut bytes.Buffer
	if code := mintToken([]string{"-sub", "alice", "-ttl", "2h"}, env, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if parts := strings.Split(tok, "."); len(parts) != 3 || parts[0] != "pt1" {
		t.Fatalf("token %q", tok)
	}
	if code := mintToken(nil, func(string) string { return "" }, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "PARLEY_AUTH_SECRET") {
		t.Fatalf("without a secret: exit %d, %q", code, errOut.String())
	}
}
