package event

import (
	"github.com/parleyhq/parley/internal/jsonbytes"
)

// The events every turn makes (a transcript, deltas, the done, an error
// for a refusal) are written by hand: encoding/json's reflection was
// about 5 % of a replica's CPU per turn. The bytes are encoding/json's
// (TestMarshalByHandIsReflect, FuzzMarshalByHand).

// appendEvent writes the events of a turn; ok false for the others.
func appendEvent(ev Event) (b []byte, ok bool) {
	switch e := ev.(type) {
	case Transcript:
		b = head(TypeTranscript, len(e.Text))
		if e.Turn != 0 {
			b = jsonbytes.AppendInt(append(b, `,"turn":`...), e.Turn)
		}
		b = jsonbytes.AppendString(append(b, `,"text":`...), e.Text)
		b = jsonbytes.AppendBool(append(b, `,"final":`...), e.Final)
		if e.Source != "" {
			b = jsonbytes.AppendString(append(b, `,"source":`...), string(e.Source))
		}
	case ReplyDelta:
		b = jsonbytes.AppendInt(append(head(TypeReplyDelta, len(e.Text)), `,"turn":`...), e.Turn)
		b = jsonbytes.AppendString(append(b, `,"text":`...), e.Text)
		if e.Reset {
			b = append(b, `,"reset":true`...)
		}
	case ReplyDone:
		b = jsonbytes.AppendInt(append(head(TypeReplyDone, len(e.Text)), `,"turn":`...), e.Turn)
		b = jsonbytes.AppendString(append(b, `,"text":`...), e.Text)
		if e.Interrupted {
			b = append(b, `,"interrupted":true`...)
		}
	case Interrupted:
		b = jsonbytes.AppendInt(append(head(TypeInterrupted, 0), `,"turn":`...), e.Turn)
	case Error:
		b = jsonbytes.AppendString(append(head(TypeError, len(e.Message)), `,"code":`...), string(e.Code))
		b = jsonbytes.AppendString(append(b, `,"message":`...), e.Message)
		if e.Turn != 0 {
			b = jsonbytes.AppendInt(append(b, `,"turn":`...), e.Turn)
		}
		if e.RetryAfterMs != 0 {
			b = jsonbytes.AppendInt(append(b, `,"retry_after_ms":`...), e.RetryAfterMs)
		}
	case State:
		b = jsonbytes.AppendString(append(head(TypeState, 0), `,"state":`...), string(e.State))
	default:
		return nil, false
	}
	return append(b, '}'), true
}

// head starts an event of type t whose text is about n bytes.
func head(t Type, n int) []byte {
	b := make([]byte, 0, 64+n+n/8)
	return jsonbytes.AppendString(append(b, `{"type":`...), string(t))
}
