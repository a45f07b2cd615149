package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
)

// SignatureHeader is the header Twilio signs its requests in.
const SignatureHeader = "X-Twilio-Signature"

// Signature is what Twilio sends in X-Twilio-Signature for a request to
// fullURL (the URL as Twilio requested it: scheme, host, path and query)
// with the form parameters params (a POST's body; none for a GET or a
// WebSocket upgrade): base64 of HMAC-SHA1, keyed with the account's auth
// token, of the URL followed by each parameter's name and value, the
// names in sorted order (a name's several values in sorted order too).
func Signature(authToken, fullURL string, params url.Values) string {
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(fullURL))
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			m.Write([]byte(k))
			m.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// validSignature reports whether got is Twilio's signature of the
// request, compared in constant time. An empty one never is.
func validSignature(authToken, got, fullURL string, params url.Values) bool {
	if got == "" {
		return false
	}
	return macEqual([]byte(got), []byte(Signature(authToken, fullURL, params)))
}

// macEqual is the comparison used, as a variable so that a test can see
// that it is the constant-time one.
var macEqual = hmac.Equal
