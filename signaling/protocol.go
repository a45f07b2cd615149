package signaling

import (
	"encoding/json"
	"strings"
	"time"
)

// Error codes of the protocol's error event that signaling itself sends;
// the pipeline's codes (rate_limited, busy, upstream, …) pass through.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeExpired      = "session_expired"
	codeUnsupported  = "unsupported"
	codeInternal     = "internal"
)

// inMsg is any client message; which fields matter depends on Type.
type inMsg struct {
	Type      string          `json:"type"`
	Session   string          `json:"session"`
	Token     string          `json:"token"`
	LastEvent string          `json:"last_event"`
	Audio     *audioSpec      `json:"audio"`
	Text      *string         `json:"text"`
	SDP       json.RawMessage `json:"sdp"`
	Candidate json.RawMessage `json:"candidate"`
}

type audioSpec struct {
	Transport string `json:"transport"`
	Codec     string `json:"codec"`
}

// Message types a client may send; anything else is refused by name.
var knownTypes = map[string]bool{
	"hello": true, "text": true, "offer": true, "candidate": true, "interrupt": true, "bye": true,
}

type sessionMsg struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	Token   string `json:"token"`
	Resumed bool   `json:"resumed"`
}

// reconnectWire tells a client that this replica is going away: wait
// retryAfter, then reconnect (to any replica) and resume with last_event;
// nothing is lost.
func reconnectWire(retryAfter time.Duration) []byte {
	b, _ := json.Marshal(reconnectMsg{Type: "reconnect", Reason: ReasonShutdown.String(),
		Message:      "this server is shutting down; reconnect (to any replica) after retry_after_ms and resume with last_event",
		RetryAfterMs: retryAfter.Milliseconds()})
	return b
}

type reconnectMsg struct {
	Type         string `json:"type"`
	Reason       string `json:"reason"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retry_after_ms"` // 0 is a delay too: always sent
}

type errorMsg struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

func errorWire(code, message string) []byte {
	b, _ := json.Marshal(errorMsg{Type: "error", Code: code, Message: message})
	return b
}

// eventID returns the "id" of a stored event's wire form, which always
// starts with it ({"id":"…",…}); ephemeral events have none.
func eventID(wire []byte) string {
	const prefix = `{"id":"`
	if len(wire) < len(prefix) || string(wire[:len(prefix)]) != prefix {
		return ""
	}
	rest := string(wire[len(prefix):])
	if i := strings.IndexByte(rest, '"'); i > 0 {
		return rest[:i]
	}
	return ""
}
