package event

// Code names what went wrong: the "code" of an Error event. Front ends map
// them onto their protocols' own codes.
type Code string

// The codes.
const (
	CodeBadRequest     Code = "bad_request"     // the client's message was wrong; the connection goes on
	CodeUnauthorized   Code = "unauthorized"    // a wrong resume token or session id
	CodeSessionExpired Code = "session_expired" // the session expired or never existed
	CodeUnsupported    Code = "unsupported"     // the server cannot do what was asked (voice off, say)
	CodeInternal       Code = "internal"        // Redis failed; what was not done is in the message
	CodeRateLimited    Code = "rate_limited"    // over the session's or the global rate; retry after RetryAfterMs
	CodeBusy           Code = "busy"            // every slot and the queue are full, or the turn waited too long
	CodeUpstream       Code = "upstream"        // the model (or recogniser, or synthesiser) failed or timed out
	CodeTurnLimit      Code = "turn_limit"      // the session has had its most turns; start a new one
	CodeCallFailed     Code = "call_failed"     // the call could not start or broke; the session goes on
	CodeWebRTCFailed   Code = "webrtc_failed"   // WebRTC does not carry the call; it can move to the WebSocket
)
