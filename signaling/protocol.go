package signaling

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Error codes of the protocol's error event that signaling itself sends;
// the pipeline's codes (rate_limited, busy, upstream, …) pass through.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeExpired      = "session_expired"
	codeUnsupported  = "unsupported"
	codeInternal     = "internal"
	codeCallFailed   = "call_failed"   // the call could not start or broke; the session goes on
	codeWebRTCFailed = "webrtc_failed" // WebRTC does not carry the call; it can move to the WebSocket
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
	Transport string          `json:"transport"` // of an audio message (a move), as in hello's audio
	Codec     string          `json:"codec"`
}

type audioSpec struct {
	Transport string `json:"transport"`
	Codec     string `json:"codec"`
}

// Message types a client may send; anything else is refused by name.
var knownTypes = map[string]bool{
	"hello": true, "text": true, "offer": true, "candidate": true, "interrupt": true, "bye": true,
	"audio": true,
}

// audioProblem says what is wrong with an audio transport and codec a
// client asked for, or "".
func audioProblem(transport, codec string) string {
	switch {
	case codec != "" && codec != "opus":
		return fmt.Sprintf("audio codec %q: only opus is supported", truncate(codec, 20))
	case transport != "ws" && transport != "webrtc":
		return fmt.Sprintf(`audio transport %q: use "ws" or "webrtc"`, truncate(transport, 20))
	}
	return ""
}

// audioMsg tells the client which transport its call's audio is on, once
// a move is done.
type audioMsg struct {
	Type      string `json:"type"` // "audio"
	Transport string `json:"transport"`
	Codec     string `json:"codec"`
}

type sessionMsg struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	Token   string `json:"token"`
	Resumed bool   `json:"resumed"`
}

// reconnectWire tells a client that this replica is going away: reconnect
// (to any replica) and resume with last_event; nothing is lost.
var reconnectWire = []byte(`{"type":"reconnect","reason":"shutdown","message":"this server is shutting down; reconnect (to any replica) and resume with last_event"}`)

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
