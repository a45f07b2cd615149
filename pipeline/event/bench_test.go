package event

import (
	"encoding/json"
	"testing"
)

// The hot path: a reply's delta is marshalled once per piece stored.
func BenchmarkMarshalDelta(b *testing.B) {
	ev := ReplyDelta{Turn: 12, Text: "It is a quarter past three, "}
	for b.Loop() {
		_ = Marshal(ev)
	}
}

// What the store did before the schema: a plain struct with its type.
func BenchmarkMarshalDeltaPlainStruct(b *testing.B) {
	type deltaBody struct {
		Type  string `json:"type"`
		Turn  int64  `json:"turn"`
		Text  string `json:"text"`
		Reset bool   `json:"reset,omitempty"`
	}
	for b.Loop() {
		_, _ = json.Marshal(deltaBody{Type: "reply.delta", Turn: 12, Text: "It is a quarter past three, "})
	}
}

func BenchmarkAroundTurn(b *testing.B) {
	ev := Transcript{Text: "what time is it", Final: true, Source: SourceText}
	for b.Loop() {
		_, _ = AroundTurn(ev)
	}
}

// The same delta through encoding/json, as Marshal wrote every event
// before the turn's events were written by hand.
func BenchmarkMarshalDeltaReflect(b *testing.B) {
	ev := ReplyDelta{Turn: 12, Text: "It is a quarter past three, "}
	for b.Loop() {
		_ = marshalReflect(ev)
	}
}
