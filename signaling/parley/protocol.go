package parley

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/signaling"
)

// Error codes that signaling itself sends, from the one list in
// pipeline/event.
const (
	codeBadRequest   = event.CodeBadRequest
	codeUnauthorized = event.CodeUnauthorized
	codeExpired      = event.CodeSessionExpired
	codeUnsupported  = event.CodeUnsupported
	codeInternal     = event.CodeInternal
	codeCallFailed   = event.CodeCallFailed
	codeWebRTCFailed = event.CodeWebRTCFailed
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
	Tools     json.RawMessage `json:"tools"` // hello: the tools the client runs
	// hello: the server's tools the session is offered (absent: as it is)
	ServerTools json.RawMessage `json:"server_tools"`
	CallID      *string         `json:"call_id"` // tool.result
	Output      *string         `json:"output"`  // tool.result
}

type audioSpec struct {
	Transport string `json:"transport"`
	Codec     string `json:"codec"`
}

// Message types a client may send; anything else is refused by name.
var knownTypes = map[string]bool{
	"hello": true, "text": true, "offer": true, "candidate": true, "interrupt": true, "bye": true,
	"audio": true, "tool.result": true,
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

// reconnectWire tells a client that this replica is going away: wait
// retryAfter, then reconnect (to any replica) and resume with last_event;
// nothing is lost.
func reconnectWire(retryAfter time.Duration) []byte {
	b, _ := json.Marshal(reconnectMsg{Type: "reconnect", Reason: signaling.ReasonShutdown.String(),
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

func errorWire(code event.Code, message string) []byte {
	return event.Marshal(event.Error{Code: code, Message: message})
}

// CloseCode is the Parley protocol's WebSocket close code for a reason:
// standard codes where one fits, else 4000 plus an HTTP-like number.
func CloseCode(r signaling.Reason) int {
	switch r {
	case signaling.ReasonBye:
		return websocket.CloseNormalClosure
	case signaling.ReasonTooBig:
		return websocket.CloseMessageTooBig
	case signaling.ReasonShutdown:
		return websocket.CloseServiceRestart // 1012: reconnect
	case signaling.ReasonUnauthorized:
		return 4401
	case signaling.ReasonSlowClient:
		return 4408
	case signaling.ReasonReadTimeout, signaling.ReasonHelloTimeout:
		return 4000
	case signaling.ReasonTooManyErrors:
		return 4429
	}
	return websocket.CloseGoingAway
}
