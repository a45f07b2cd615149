package event

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func ms(v int64) *int64 { return &v }

// The stored form of each event, byte for byte as docs/protocol.md gives
// it (and as the Parley protocol's clients read it), and back.
func TestStoredForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"user turn", Transcript{Turn: 3, Text: "hi \"you\"", Final: true, Source: SourceText}, `{"type":"transcript","turn":3,"text":"hi \"you\"","final":true,"source":"text"}`},
		{"partial transcript", Transcript{Text: "wha"}, `{"type":"transcript","text":"wha","final":false}`},
		{"delta", ReplyDelta{Turn: 1, Text: "It is "}, `{"type":"reply.delta","turn":1,"text":"It is "}`},
		{"delta after takeover", ReplyDelta{Turn: 1, Text: "It", Reset: true}, `{"type":"reply.delta","turn":1,"text":"It","reset":true}`},
		{"done", ReplyDone{Turn: 2, Text: "Bye."}, `{"type":"reply.done","turn":2,"text":"Bye."}`},
		{"done, cut", ReplyDone{Turn: 2, Text: "By", Interrupted: true}, `{"type":"reply.done","turn":2,"text":"By","interrupted":true}`},
		{"interrupted", Interrupted{Turn: 4}, `{"type":"interrupted","turn":4}`},
		{"error of a turn", Error{Code: CodeUpstream, Message: "down", Turn: 5}, `{"type":"error","code":"upstream","message":"down","turn":5}`},
		{"refusal", Error{Code: CodeBusy, Message: "full", RetryAfterMs: 1000}, `{"type":"error","code":"busy","message":"full","retry_after_ms":1000}`},
		{"state", State{State: Speaking}, `{"type":"state","state":"speaking"}`},
		{"a tool call", ToolCall{Turn: 2, CallID: "call_1", Name: "weather", Arguments: `{"city":"Oslo"}`, By: ByClient},
			`{"type":"tool.call","turn":2,"call_id":"call_1","name":"weather","arguments":"{\"city\":\"Oslo\"}","by":"client"}`},
		{"a server tool's result", ToolDone{Turn: 2, CallID: "call_1", Output: "sunny"}, `{"type":"tool.done","turn":2,"call_id":"call_1","output":"sunny"}`},
		{"a key press and the turn it made", DTMF{Turn: 3, Digit: "5"}, `{"type":"dtmf","turn":3,"digit":"5"}`},
		{"a key press only", DTMF{Digit: "#"}, `{"type":"dtmf","digit":"#"}`},
		{"typed turn's latency", Latency{Turn: 1, Server: 40, LLMFirstToken: 12, TTSFirstAudio: 20},
			`{"type":"latency","turn":1,"server_ms":40,"llm_first_token_ms":12,"tts_first_audio_ms":20}`},
		{"spoken turn's latency", Latency{Turn: 1, VoiceToVoice: ms(700), Endpoint: ms(600), Server: 100, ASR: ms(30), LLMFirstToken: 12, TTSFirstAudio: 20},
			`{"type":"latency","turn":1,"voice_to_voice_ms":700,"endpoint_ms":600,"server_ms":100,"asr_ms":30,"llm_first_token_ms":12,"tts_first_audio_ms":20}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Marshal(tc.ev))
			if got != tc.want {
				t.Fatalf("stored form\n got %s\nwant %s", got, tc.want)
			}
			wire := WithID("1700000000000-3", []byte(got))
			if string(wire) != `{"id":"1700000000000-3",`+tc.want[1:] {
				t.Fatalf("wire form %s", wire)
			}
			if IDOf(wire) != "1700000000000-3" || IDOf([]byte(got)) != "" {
				t.Fatalf("IDOf: %q, %q", IDOf(wire), IDOf([]byte(got)))
			}
			id, back, err := Decode(wire)
			if err != nil || id != "1700000000000-3" || !reflect.DeepEqual(back, tc.ev) {
				t.Fatalf("Decode: %q %#v %v; want %#v", id, back, err, tc.ev)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	if _, _, err := Decode([]byte(`{"type":"dance"}`)); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown type: %v", err)
	}
	for _, b := range []string{`not json`, `{"type":"reply.delta","turn":"x"}`, ``} {
		if _, _, err := Decode([]byte(b)); err == nil {
			t.Errorf("%q decoded", b)
		}
	}
}

// A script that numbers the turn as it stores the event gets the same
// bytes as Marshal would.
func TestAroundTurn(t *testing.T) {
	for _, ev := range []Event{
		Transcript{Text: "a \"turn\":-1 b", Final: true, Source: SourceVoice},
		ReplyDone{Text: "x"},
	} {
		pre, post := AroundTurn(ev)
		if got, want := pre+"42"+post, string(Marshal(withTurn(ev, 42))); got != want {
			t.Errorf("%s, want %s", got, want)
		}
	}
}

func TestMarshalByHandIsReflect(t *testing.T) {
	odd := "a \"quote\" <b>&</b>\n\t\x01 \u2028 é 😀 \xff"
	evs := []Event{
		Transcript{Text: "hello", Final: true}, Transcript{Turn: 3, Text: odd, Final: true, Source: SourceVoice},
		Transcript{Text: ""}, ReplyDelta{Turn: 1, Text: odd}, ReplyDelta{Turn: 9, Text: "x", Reset: true},
		ReplyDelta{}, ReplyDone{Turn: 2, Text: "whole"}, ReplyDone{Turn: -1, Text: odd, Interrupted: true},
		Interrupted{Turn: 7}, Interrupted{}, Error{Code: CodeBusy, Message: odd, Turn: 4, RetryAfterMs: 1000},
		Error{Code: "bad_request", Message: ""}, State{State: Speaking}, State{},
	}
	for _, ev := range evs {
		t.Run(fmt.Sprintf("%T", ev), func(t *testing.T) {
			got, ok := appendEvent(ev)
			if want := marshalReflect(ev); !ok || string(got) != string(want) {
				t.Fatalf("by hand (%v) %s, encoding/json %s", ok, got, want)
			}
		})
	}
	if _, ok := appendEvent(Latency{}); ok {
		t.Fatal("an event not written by hand was")
	}
}

func FuzzMarshalByHand(f *testing.F) {
	f.Add(int64(1), "hello", "busy", true)
	f.Add(int64(0), "\xff<\u2028>\"", "", false)
	f.Fuzz(func(t *testing.T, n int64, text, code string, flag bool) {
		for _, ev := range []Event{
			Transcript{Turn: n, Text: text, Final: flag, Source: Source(code)}, ReplyDelta{Turn: n, Text: text, Reset: flag},
			ReplyDone{Turn: n, Text: text, Interrupted: flag}, Interrupted{Turn: n},
			Error{Code: Code(code), Message: text, Turn: n, RetryAfterMs: n / 2}, State{State: BotState(text)},
		} {
			if got, want := Marshal(ev), marshalReflect(ev); string(got) != string(want) {
				t.Fatalf("%T: by hand %s, encoding/json %s", ev, got, want)
			}
		}
	})
}
