package signaling

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parleyhq/parley/pipeline/session"
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
		`{"type":"` + strings.Repeat("dance", 20) + `"}`, `{"type":"\u00e9t\u00e9"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, bad := decodeMessage(data)
		if bad != "" {
			checkRefusal(t, bad)
			if quoted, ok := strings.CutPrefix(bad, "unknown message type "); ok {
				// The type is named, cut short if long, but never in the
				// middle of a character.
				name, err := strconv.Unquote(quoted)
				if err != nil {
					t.Fatalf("refusal %q: the type is not quoted: %v", bad, err)
				}
				name = strings.TrimSuffix(name, "…")
				if !utf8.ValidString(name) || !strings.HasPrefix(m.Type, name) || name == "" {
					t.Fatalf("refusal %q names %q, not a prefix of the type %q", bad, name, m.Type)
				}
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
				checkRefusal(t, bad)
				if text != "" {
					t.Fatal("text returned with a refusal")
				}
				return
			}
			if text == "" || text != strings.TrimSpace(text) || !utf8.ValidString(text) || utf8.RuneCountInString(text) > limit {
				t.Fatalf("accepted text %q", text)
			}
		case "hello":
			session.ValidEventID(m.LastEvent) // any string: no panic
		case "offer":
			if sdp, err := sdpOf(m.SDP); err == nil && sdp == "" && len(m.SDP) > 0 && string(m.SDP) != `""` {
				t.Fatalf("an empty SDP from %s", m.SDP)
			}
		}
	})
}

// checkRefusal: what a client is told of its bad message is words, valid
// UTF-8, and short whatever it sent: bad input is not echoed back in bulk.
func checkRefusal(t *testing.T, bad string) {
	t.Helper()
	if strings.TrimSpace(bad) == "" || !utf8.ValidString(bad) || len(bad) > 256 {
		t.Fatalf("refusal %q", bad)
	}
}
