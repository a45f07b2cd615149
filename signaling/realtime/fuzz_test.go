package realtime

import (
	"encoding/json"
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
