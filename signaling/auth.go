package signaling

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// AuthConfig says who may open /ws. With neither Tokens nor Secret, anyone
// may (the demo default).
type AuthConfig struct {
	// Tokens are static bearer tokens; a request carrying any of them is
	// let in. Compared in constant time. With a Secret, a token starting
	// "pt1." is taken for a signed one, so static tokens should not.
	Tokens []string
	// Secret is the HMAC-SHA256 key of signed tokens (see SignToken): a
	// backend that knows it mints short-lived tokens for its users.
	Secret []byte
}

func (a AuthConfig) on() bool { return len(a.Tokens) > 0 || len(a.Secret) > 0 }

// Errors of a refused token, as the client is told.
var (
	errNoToken      = errors.New("a token is required: Authorization: Bearer <token>, or ?access_token=<token>")
	errBadToken     = errors.New("the token is not valid")
	errTokenExpired = errors.New("the token has expired")
)

// tokenPrefix marks signed tokens (and their format's version).
const tokenPrefix = "pt1."

// ephemeralPrefix is what the OpenAI SDKs' ephemeral keys start with; a
// signed token may carry it (see the Realtime protocol's client secrets).
const ephemeralPrefix = "ek_"

type tokenClaims struct {
	Sub string `json:"sub,omitempty"`
	Exp int64  `json:"exp"` // Unix seconds
}

// SignToken mints a signed token for subject, valid until now+ttl:
// "pt1." + base64url(JSON {"sub","exp"}) + "." + base64url(HMAC-SHA256 of
// everything before the last dot). Anyone with secret can mint one, so
// keep it on the backend.
func SignToken(secret []byte, subject string, ttl time.Duration, now time.Time) string {
	payload, _ := json.Marshal(tokenClaims{Sub: subject, Exp: now.Add(ttl).Unix()})
	body := tokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(sign(secret, body))
}

func sign(secret []byte, body string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// verifySigned checks a signed token's signature, then its expiry.
func verifySigned(secret []byte, token string, now time.Time) error {
	body, sig, ok := strings.Cut(token[len(tokenPrefix):], ".")
	if !ok {
		return errBadToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !macEqual(got, sign(secret, tokenPrefix+body)) {
		return errBadToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	var c tokenClaims
	if err != nil || json.Unmarshal(payload, &c) != nil || c.Exp == 0 {
		return errBadToken
	}
	if now.Unix() >= c.Exp {
		return errTokenExpired
	}
	return nil
}

// requestToken is the token a request carries: the Authorization header,
// or the access_token query parameter (a browser's WebSocket cannot set
// headers).
func requestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("access_token")
}

// verifier checks requests' tokens against an AuthConfig. The static
// tokens' digests are computed once, so a check costs one SHA-256 of the
// presented token and a 32-byte compare per configured token, or one
// HMAC for a signed token, whatever the outcome: a refusal, throttled or
// not, costs no more than a success. Safe for concurrent use.
type verifier struct {
	on      bool
	digests [][sha256.Size]byte
	secret  []byte
}

func newVerifier(a AuthConfig) *verifier {
	v := &verifier{on: a.on(), secret: a.Secret}
	for _, t := range a.Tokens {
		v.digests = append(v.digests, sha256.Sum256([]byte(t)))
	}
	return v
}

// check checks the request's token. It never logs the token.
func (v *verifier) check(r *http.Request, now time.Time) error {
	return v.checkWith(r, nil, now)
}

// checkWith is check with the protocol's own place for a token (see
// Protocol.Token), looked at when the header and the query have none.
func (v *verifier) checkWith(r *http.Request, protoToken func(*http.Request) string, now time.Time) error {
	if !v.on {
		return nil
	}
	tok := requestToken(r)
	if tok == "" && protoToken != nil {
		tok = protoToken(r)
	}
	if tok == "" {
		return errNoToken
	}
	// A signed token may come as an ephemeral key of the OpenAI SDKs,
	// "ek_" + token (the browser SDK takes no other key without a flag).
	if signed := strings.TrimPrefix(tok, ephemeralPrefix); len(v.secret) > 0 && strings.HasPrefix(signed, tokenPrefix) {
		return verifySigned(v.secret, signed, now)
	}
	// Every configured token is compared, with no early exit, as SHA-256
	// digests: ConstantTimeCompare returns at once on a length mismatch,
	// which would tell a guesser how long a token is.
	presented := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range v.digests {
		ok |= ctCompare(v.digests[i][:], presented[:])
	}
	if ok == 1 {
		return nil
	}
	return errBadToken
}

// The constant-time comparisons, as variables so that a test can see that
// they are the ones used.
var (
	ctCompare = subtle.ConstantTimeCompare
	macEqual  = hmac.Equal
)
