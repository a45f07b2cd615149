package event

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Type names an event: the "type" of its stored form.
type Type string

// The types of events.
const (
	TypeTranscript  Type = "transcript"
	TypeReplyDelta  Type = "reply.delta"
	TypeReplyDone   Type = "reply.done"
	TypeInterrupted Type = "interrupted"
	TypeError       Type = "error"
	TypeState       Type = "state"
	TypeLatency     Type = "latency"
	TypeToolCall    Type = "tool.call"
	TypeToolDone    Type = "tool.done"
	TypeDTMF        Type = "dtmf"
)

// Event is one thing a session says. The concrete types below are all
// there are.
type Event interface {
	Type() Type
}

// Transcript is what the caller said or typed. A final one with a Turn is
// a user turn, stored; a partial one (Final false, no Turn) is the
// recogniser's guess so far, sent and not stored.
type Transcript struct {
	Turn   int64  `json:"turn,omitempty"`
	Text   string `json:"text"`
	Final  bool   `json:"final"`
	Source Source `json:"source,omitempty"` // final ones: how the turn came
}

// Source is how a user turn came: typed or spoken.
type Source string

// Sources of user turns.
const (
	SourceText  Source = "text"
	SourceVoice Source = "voice"
)

// ReplyDelta is a piece of the bot's reply to a turn. Reset marks the
// first piece of a run that took the turn over from a replica that died:
// the pieces before it are void.
type ReplyDelta struct {
	Turn  int64  `json:"turn"`
	Text  string `json:"text"`
	Reset bool   `json:"reset,omitempty"`
}

// ReplyDone is the bot's whole reply to a turn, authoritative over its
// deltas; after an interruption, what was heard.
type ReplyDone struct {
	Turn        int64  `json:"turn"`
	Text        string `json:"text"`
	Interrupted bool   `json:"interrupted,omitempty"`
}

// Interrupted says the reply to a turn was cut; its ReplyDone follows.
type Interrupted struct {
	Turn int64 `json:"turn"`
}

// Error is a turn refused or failed, or a client's mistake. Not stored.
type Error struct {
	Code         Code   `json:"code"`
	Message      string `json:"message"`
	Turn         int64  `json:"turn,omitempty"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

// State is the bot's turn state in a call. Not stored.
type State struct {
	State BotState `json:"state"`
}

// BotState is where a call's bot is in a turn.
type BotState string

// The bot's states.
const (
	Listening BotState = "listening"
	Thinking  BotState = "thinking"
	Speaking  BotState = "speaking"
)

// Latency is how long a call's turn took, in milliseconds, sent with its
// first audio frame. Not stored. Figures of steps that did not happen (a
// typed turn has no speech) are nil. See docs/protocol.md for where each
// starts and stops.
type Latency struct {
	Turn int64 `json:"turn"`
	// VoiceToVoice: the end of the caller's last voiced audio to the
	// first frame of the bot's audio leaving the server: what the caller
	// waits, but for the network.
	VoiceToVoice *int64 `json:"voice_to_voice_ms,omitempty"`
	// Endpoint: the end of voiced audio to the end-of-turn decision (the
	// silence the turn detector waited for).
	Endpoint *int64 `json:"endpoint_ms,omitempty"`
	// EndpointWhy: the rule that chose that silence (pipeline/endpoint:
	// question, reply, unfinished, dictation, request, statement,
	// no_words; fixed when the silence is set).
	EndpointWhy string `json:"endpoint_why,omitempty"`
	// Server: the end-of-turn decision (or a typed turn's arrival) to the
	// first audio frame leaving the server.
	Server        int64  `json:"server_ms"`
	ASR           *int64 `json:"asr_ms,omitempty"`
	LLMFirstToken int64  `json:"llm_first_token_ms"`
	TTSFirstAudio int64  `json:"tts_first_audio_ms"`
}

// ToolCall is the model asking for a tool, within a turn's reply; By says
// who runs it. Stored, so that a client that resumes learns of a call it
// must still answer.
type ToolCall struct {
	Turn      int64  `json:"turn"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // JSON, as the model wrote it
	By        Runner `json:"by"`
}

// Runner is who runs a tool.
type Runner string

// The runners of tools.
const (
	ByClient Runner = "client" // the client declared it and answers with its result
	ByServer Runner = "server" // the server runs it (an MCP server's, say)
)

// ToolDone is a server-run tool's result. Stored.
type ToolDone struct {
	Turn   int64  `json:"turn"`
	CallID string `json:"call_id"`
	Output string `json:"output"`
}

// DTMF is a key the caller pressed on a phone (a DTMF tone: 0-9, *, #,
// A-D). Turn is the user turn the key press made, if it made one (its
// transcript is stored just before); none when the front end only records
// key presses. Stored.
type DTMF struct {
	Turn  int64  `json:"turn,omitempty"`
	Digit string `json:"digit"`
}

func (Transcript) Type() Type  { return TypeTranscript }
func (ReplyDelta) Type() Type  { return TypeReplyDelta }
func (ReplyDone) Type() Type   { return TypeReplyDone }
func (Interrupted) Type() Type { return TypeInterrupted }
func (Error) Type() Type       { return TypeError }
func (State) Type() Type       { return TypeState }
func (Latency) Type() Type     { return TypeLatency }
func (ToolCall) Type() Type    { return TypeToolCall }
func (ToolDone) Type() Type    { return TypeToolDone }
func (DTMF) Type() Type        { return TypeDTMF }

// TurnOf is the turn an event belongs to; 0 for none.
func TurnOf(ev Event) int64 {
	switch e := ev.(type) {
	case Transcript:
		return e.Turn
	case ReplyDelta:
		return e.Turn
	case ReplyDone:
		return e.Turn
	case Interrupted:
		return e.Turn
	case Error:
		return e.Turn
	case Latency:
		return e.Turn
	case ToolCall:
		return e.Turn
	case ToolDone:
		return e.Turn
	case DTMF:
		return e.Turn
	}
	return 0
}

// Marshal is the event's stored form: its JSON object, "type" first.
// The events of every turn are written by hand (marshal.go), the rest
// by encoding/json.
func Marshal(ev Event) []byte {
	if b, ok := appendEvent(ev); ok {
		return b
	}
	return marshalReflect(ev)
}

// marshalReflect is Marshal by encoding/json, the form appendEvent is
// held to.
func marshalReflect(ev Event) []byte {
	var v any
	switch e := ev.(type) {
	case Transcript:
		type plain Transcript
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case ReplyDelta:
		type plain ReplyDelta
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case ReplyDone:
		type plain ReplyDone
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case Interrupted:
		type plain Interrupted
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case Error:
		type plain Error
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case State:
		type plain State
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case Latency:
		type plain Latency
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case ToolCall:
		type plain ToolCall
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case ToolDone:
		type plain ToolDone
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	case DTMF:
		type plain DTMF
		v = struct {
			T Type `json:"type"`
			plain
		}{e.Type(), plain(e)}
	default:
		panic(fmt.Sprintf("event: Marshal of %T", ev))
	}
	b, err := json.Marshal(v)
	if err != nil { // only strings, numbers and bools: cannot happen
		panic(err)
	}
	return b
}

// ErrUnknown is returned by Decode for a type it does not know.
var ErrUnknown = errors.New("event: unknown type")

// Decode reads an event in its stored or wire form, and its id ("" when
// it has none).
func Decode(b []byte) (id string, ev Event, err error) {
	var head struct {
		ID   string `json:"id"`
		Type Type   `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return "", nil, fmt.Errorf("event: %w", err)
	}
	switch head.Type {
	case TypeTranscript:
		ev, err = decodeAs[Transcript](b)
	case TypeReplyDelta:
		ev, err = decodeAs[ReplyDelta](b)
	case TypeReplyDone:
		ev, err = decodeAs[ReplyDone](b)
	case TypeInterrupted:
		ev, err = decodeAs[Interrupted](b)
	case TypeError:
		ev, err = decodeAs[Error](b)
	case TypeState:
		ev, err = decodeAs[State](b)
	case TypeLatency:
		ev, err = decodeAs[Latency](b)
	case TypeToolCall:
		ev, err = decodeAs[ToolCall](b)
	case TypeToolDone:
		ev, err = decodeAs[ToolDone](b)
	case TypeDTMF:
		ev, err = decodeAs[DTMF](b)
	default:
		return head.ID, nil, fmt.Errorf("%w %q", ErrUnknown, head.Type)
	}
	return head.ID, ev, err
}

func decodeAs[T Event](b []byte) (Event, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return v, nil
}
