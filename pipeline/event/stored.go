package event

import (
	"bytes"
	"fmt"
	"strings"
)

// WithID is the wire form of a stored event: body (an event's stored
// form) with the log entry's id put first.
func WithID[B ~string | ~[]byte](id string, body B) []byte {
	b := make([]byte, 0, len(body)+len(id)+8)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `",`...)
	return append(b, body[1:]...)
}

// IDOf is the id of an event's wire form, which WithID puts first; "" for
// an event without one (not stored).
func IDOf(wire []byte) string {
	const prefix = `{"id":"`
	if !bytes.HasPrefix(wire, []byte(prefix)) {
		return ""
	}
	rest := wire[len(prefix):]
	if i := bytes.IndexByte(rest, '"'); i > 0 {
		return string(rest[:i])
	}
	return ""
}

// AroundTurn splits ev's stored form where its turn number goes, for a
// Redis script that takes the turn's number as it stores the event:
// pre + number + post is the stored form of ev with that turn.
func AroundTurn(ev Event) (pre, post string) {
	const mark = `"turn":-1`
	b := string(Marshal(withTurn(ev, -1)))
	i := strings.Index(b, mark)
	if i < 0 {
		panic(fmt.Sprintf("event: AroundTurn of %T, which has no turn", ev))
	}
	return b[:i+len(mark)-2], b[i+len(mark):]
}

// withTurn is ev with its turn set to n.
func withTurn(ev Event, n int64) Event {
	switch e := ev.(type) {
	case Transcript:
		e.Turn = n
		return e
	case ReplyDelta:
		e.Turn = n
		return e
	case ReplyDone:
		e.Turn = n
		return e
	case Interrupted:
		e.Turn = n
		return e
	case Error:
		e.Turn = n
		return e
	case Latency:
		e.Turn = n
		return e
	case ToolCall:
		e.Turn = n
		return e
	case ToolDone:
		e.Turn = n
		return e
	case DTMF:
		e.Turn = n
		return e
	}
	return ev
}
