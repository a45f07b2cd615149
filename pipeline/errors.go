package pipeline

import (
	"fmt"
	"time"
)

// Code names why a turn was refused or failed. The values are the "code"
// of the protocol's error event.
type Code string

// Codes of turn errors.
const (
	CodeRateLimited Code = "rate_limited" // over the session's or the global rate; retry after RetryAfter
	CodeBusy        Code = "busy"         // every slot and the queue are full, or the turn waited too long
	CodeUpstream    Code = "upstream"     // the LLM failed or timed out
	CodeNotFound    Code = "session_expired"
	CodeTurnLimit   Code = "turn_limit" // the session has had its most turns; start a new one
	CodeInternal    Code = "internal"   // Redis failed; the turn was not accepted
)

// TurnError is a turn refused or failed, to be told to the client.
type TurnError struct {
	Code       Code
	Message    string
	RetryAfter time.Duration // with CodeRateLimited and CodeBusy
	Turn       int64         // 0 when the turn was refused before it got a number
}

func (e *TurnError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }
