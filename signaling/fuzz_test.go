package signaling

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeMessage: any text frame is either a message of a known type or
// refused with a message in words; a text turn that passes is trimmed,
// non-empty, valid UTF-8 and within the limit; an offer's SDP is read
// without panicking.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello"}`,
		`{"type":"hello","session":"0123456789abcdef0123456789abcdef","token":"t","last_event":"1-0"}`,
		`{"type":"hello","audio":{"transport":"ws","codec":"opus"}}`,
		`{"type":"text","text":"  what time is it  "}`,
		`{"type":"text","text":""}`,
		`{"type":"text","text":null}`,
		`{"type":"text","text":"\ud800"}`,
		`{"type":"offer","sdp":{"type":"offer","sdp":"v=0"}}`,
		`{"type":"offer","sdp":"v=0"}`,
		`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}`,
		`{"type":"interrupt"}`, `{"type":"bye"}`,
		`{"type":"launch"}`, `{"type":""}`, `{}`, `[]`, `null`, `"hello"`, `{"type":`, `{"type":1}`,
		"\x00\xff", strings.Repeat(`{"a":`, 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, bad := decodeMessage(data)
		if bad != "" {
			if strings.TrimSpace(bad) == "" {
				t.Fatal("a refusal without words")
			}
			return
		}
		if !knownTypes[m.Type] {
			t.Fatalf("accepted unknown type %q", m.Type)
		}
		switch m.Type {
		case "text":
			const limit = 50
			text, bad := turnText(&m, limit)
			if bad != "" {
				if text != "" {
					t.Fatal("text returned with a refusal")
				}
				return
			}
			if text == "" || text != strings.TrimSpace(text) || !utf8.ValidString(text) || utf8.RuneCountInString(text) > limit {
				t.Fatalf("accepted text %q", text)
			}
		case "offer":
			if sdp, err := sdpOf(m.SDP); err == nil && sdp == "" && len(m.SDP) > 0 && string(m.SDP) != `""` {
				t.Fatalf("an empty SDP from %s", m.SDP)
			}
		}
	})
}
