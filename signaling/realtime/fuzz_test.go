package realtime

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzSessionUpdate: whatever a client sends as a session (GA or beta
// shape, partial, wrong types), update either applies it or says what is
// wrong, never panics, leaves the session as it was when it refuses, and
// what it applies renders as a session again.
func FuzzSessionUpdate(f *testing.F) {
	for _, seed := range []string{
		`{"type":"realtime","instructions":"x","tracing":"auto"}`,
		`{"audio":{"input":{"format":{"type":"audio/pcm","rate":16000},"turn_detection":{"type":"semantic_vad","eagerness":"low"}},"output":{"format":{"type":"audio/pcmu"},"voice":"alloy"}}}`,
		`{"input_audio_format":"g711_alaw","turn_detection":null,"modalities":["text"]}`,
		`{"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"}}`,
		`{"audio":{"input":{"turn_detection":{"type":"server_vad","threshold":2}}}}`,
		`{"audio":null,"tools":null,"output_modalities":[]}`,
		`[]`, `null`, `{"audio":{"input":[]}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c := newConf("0123", "m", 600*time.Millisecond, 400*time.Millisecond)
		before, _ := json.Marshal(c.wire(false))
		param, bad := c.update(json.RawMessage(raw), 600*time.Millisecond, 400*time.Millisecond, nil)
		after, err := json.Marshal(c.wire(false))
		if err != nil {
			t.Fatalf("the session does not render: %v", err)
		}
		if _, err := json.Marshal(c.wire(true)); err != nil {
			t.Fatalf("the beta session does not render: %v", err)
		}
		if bad != "" && string(before) != string(after) {
			t.Fatalf("refused (%s: %s) and changed anyway", param, bad)
		}
		_ = c.taking()
		_ = c.settings()
	})
}

// FuzzResponse: a response.create's response is read or refused, never a
// panic.
func FuzzResponse(f *testing.F) {
	for _, seed := range []string{`{"instructions":"x","output_modalities":["text"],"tools":[],"tool_choice":"none"}`, `{"modalities":["audio"]}`, `7`, `{"tools":{}}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, _, bad := parseResponse(json.RawMessage(raw))
		if bad == "" {
			_, _ = o.spoken(true)
			_ = o.opts()
		}
	})
}

// What the hand-read path reads, it reads as encoding/json does.
func FuzzScanAppend(f *testing.F) {
	for _, s := range []string{
		`{"type":"input_audio_buffer.append","audio":"AAAA"}`,
		`{"event_id":"e1","type":"input_audio_buffer.append","audio":"AA\/A\u0041"}`,
		`{"type":"input_audio_buffer.commit"}`, `{"type":"response.create","response":{}}`,
		`{"Type":"x"}`, `{"type":"a","type":"b"}`, `{"type":null}`, `{"audio":5}`, `{"type":"x"} y`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := scanAppend(data)
		if !ok {
			return
		}
		var want clientEvent
		if err := json.Unmarshal(data, &want); err != nil || !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: by hand %+v, encoding/json %+v (%v)", data, fast, want, err)
		}
	})
}

func BenchmarkAppendEvent(b *testing.B) {
	audio := base64.StdEncoding.EncodeToString(make([]byte, 4800)) // 100 ms at 24 kHz
	data := []byte(`{"type":"input_audio_buffer.append","audio":"` + audio + `"}`)
	b.Run("by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = scanAppend(data)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev clientEvent
			_ = json.Unmarshal(data, &ev)
		}
	})
}
