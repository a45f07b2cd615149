package twilio

import (
	"net/url"
	"testing"
)

// The worked example of Twilio's "Webhooks security" page: its auth
// token, URL and POST parameters, and the signature it gives for them.
const (
	docToken     = "12345"
	docURL       = "https://mycompany.com/myapp.php?foo=1&bar=2"
	docSignature = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
)

func docParams() url.Values {
	return url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+12349013030"},
		"Digits":  {"1234"},
		"From":    {"+12349013030"},
		"To":      {"+18005551212"},
	}
}

func TestSignatureOfTwiliosExample(t *testing.T) {
	if got := Signature(docToken, docURL, docParams()); got != docSignature {
		t.Fatalf("signature %s, want Twilio's %s", got, docSignature)
	}
	changed := docParams()
	changed.Set("Digits", "1235")
	tests := []struct {
		name   string
		token  string
		sig    string
		url    string
		params url.Values
		want   bool
	}{
		{"Twilio's example", docToken, docSignature, docURL, docParams(), true},
		{"a changed parameter", docToken, docSignature, docURL, changed, false},
		{"a parameter added", docToken, docSignature, docURL, func() url.Values { p := docParams(); p.Set("X", "1"); return p }(), false},
		{"another URL (the internal one)", docToken, docSignature, "http://127.0.0.1:8080/myapp.php?foo=1&bar=2", docParams(), false},
		{"another token", "54321", docSignature, docURL, docParams(), false},
		{"a bad signature", docToken, "0/KCTR6DLpKmkAf8muzZqo1nDgQ", docURL, docParams(), false},
		{"no signature", docToken, "", docURL, docParams(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := validSignature(tc.token, tc.sig, tc.url, tc.params); got != tc.want {
				t.Fatalf("valid %v, want %v", got, tc.want)
			}
		})
	}
}

// The comparison is the constant-time one: hmac.Equal.
func TestSignatureUsesConstantTimeCompare(t *testing.T) {
	calls := 0
	orig := macEqual
	macEqual = func(a, b []byte) bool { calls++; return orig(a, b) }
	t.Cleanup(func() { macEqual = orig })
	if !validSignature(docToken, docSignature, docURL, docParams()) || calls != 1 {
		t.Fatalf("%d constant-time compares", calls)
	}
}
