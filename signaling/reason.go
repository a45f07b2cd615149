package signaling

// Reason is why a connection ended, or was refused, whatever the protocol.
// One enum serves the logs, the metric labels and the close frames; each
// protocol maps it onto its own close codes (Protocol.CloseCode).
type Reason uint8

// Reasons a connection ends.
const (
	ReasonClientGone    Reason = iota // the socket failed or the client went away without a close frame
	ReasonBye                         // the client said bye
	ReasonClientClosed                // the client sent a close frame
	ReasonReadTimeout                 // nothing heard (not even a pong) within the read deadline
	ReasonHelloTimeout                // no hello in time after connecting
	ReasonSlowClient                  // the send queue filled up: the client does not read fast enough
	ReasonTooBig                      // a frame larger than the read cap
	ReasonUnauthorized                // a wrong resume token
	ReasonTooManyErrors               // a flood of bad messages
	ReasonWriteFailed                 // a write failed or missed its deadline
	ReasonShutdown                    // the server is shutting down: reconnect, to any replica
	ReasonUnsupported                 // the client asked for what the server does not do (a media format)
	ReasonInternal                    // the server failed (its Redis, a recogniser): the client may try again
	// Refusals before the upgrade (an HTTP status, not a close frame).
	ReasonTokenExpired  // a signed token past its expiry
	ReasonOrigin        // a browser origin not allowed
	ReasonIPConnections // the client IP has too many open connections
	ReasonIPRate        // the client IP opens connections too fast
	ReasonAuthRate      // the client IP has failed authentication too often
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonClientGone:    "client_gone",
	ReasonBye:           "bye",
	ReasonClientClosed:  "client_closed",
	ReasonReadTimeout:   "read_timeout",
	ReasonHelloTimeout:  "hello_timeout",
	ReasonSlowClient:    "slow_client",
	ReasonTooBig:        "message_too_big",
	ReasonUnauthorized:  "unauthorized",
	ReasonTooManyErrors: "too_many_errors",
	ReasonWriteFailed:   "write_failed",
	ReasonShutdown:      "shutdown",
	ReasonUnsupported:   "unsupported",
	ReasonInternal:      "internal",
	ReasonTokenExpired:  "token_expired",
	ReasonOrigin:        "origin",
	ReasonIPConnections: "ip_connections",
	ReasonIPRate:        "ip_rate",
	ReasonAuthRate:      "auth_rate",
}

// String is the reason's name in logs, metrics and close frames.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}
