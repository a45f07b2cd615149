package turn

import (
	"fmt"
	"time"

	"github.com/parleyhq/parley/pipeline/event"
)

// Codes of turn errors, from the one list in pipeline/event.
const (
	CodeRateLimited = event.CodeRateLimited
	CodeBusy        = event.CodeBusy
	CodeUpstream    = event.CodeUpstream
	CodeNotFound    = event.CodeSessionExpired
	CodeTurnLimit   = event.CodeTurnLimit
	CodeInternal    = event.CodeInternal
)

// TurnError is a turn refused or failed, to be told to the client.
type TurnError struct {
	Code       event.Code
	Message    string
	RetryAfter time.Duration // with CodeRateLimited and CodeBusy
	Turn       int64         // 0 when the turn was refused before it got a number
}

func (e *TurnError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Event is the error event that tells the client.
func (e *TurnError) Event() event.Error {
	return event.Error{Code: e.Code, Message: e.Message, Turn: e.Turn, RetryAfterMs: e.RetryAfter.Milliseconds()}
}
