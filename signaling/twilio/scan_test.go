package twilio

import (
	"encoding/json"
	"testing"
)

var mediaCases = []struct {
	name string
	msg  string
	fast bool // read by scanMedia
}{
	{"twilio's media", `{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"fn5+fn5+"},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}`, true},
	{"no track", `{"event":"media","media":{"payload":"AAAA"}}`, true},
	{"outbound", `{"streamSid":null,"event":"media","media":{"track":"outbound","payload":"AAAA"}}`, true},
	{"start", `{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}`, false},
	{"mark", `{"event":"mark","mark":{"name":"x"}}`, false},
	{"no media", `{"event":"media"}`, false},
	{"media null", `{"event":"media","media":null}`, false},
	{"escaped payload", `{"event":"media","media":{"payload":"AA\/A"}}`, false},
	{"folded key", `{"Event":"media","media":{"payload":"AAAA"}}`, false},
	{"folded payload", `{"event":"media","media":{"Payload":"AAAA"}}`, false},
	{"duplicate media", `{"event":"media","media":{"payload":"AAAA"},"media":{"track":"x"}}`, false},
	{"streamSid a number", `{"event":"media","media":{"payload":"AAAA"},"streamSid":5}`, false},
	{"truncated", `{"event":"media","media":{"payload":"AAAA"`, false},
}

func TestScanMedia(t *testing.T) {
	for _, tc := range mediaCases {
		t.Run(tc.name, func(t *testing.T) {
			track, payload, ok := scanMedia([]byte(tc.msg))
			if ok != tc.fast {
				t.Fatalf("read by hand: %v, want %v", ok, tc.fast)
			}
			if ok {
				sameAsJSON(t, []byte(tc.msg), track, payload)
			}
		})
	}
}

// sameAsJSON: encoding/json reads msg as the media message scanMedia did.
func sameAsJSON(t *testing.T, msg []byte, track string, payload []byte) {
	t.Helper()
	var m inMsg
	if err := json.Unmarshal(msg, &m); err != nil || m.Event != "media" || m.Media == nil ||
		m.Media.Track != track || m.Media.Payload != string(payload) || m.Start != nil || m.DTMF != nil || m.Mark != nil {
		t.Fatalf("%q: by hand %q %q, encoding/json %+v (%v)", msg, track, payload, m, err)
	}
}

func FuzzScanMedia(f *testing.F) {
	for _, tc := range mediaCases {
		f.Add([]byte(tc.msg))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if track, payload, ok := scanMedia(msg); ok {
			sameAsJSON(t, msg, track, payload)
		}
	})
}

func BenchmarkMediaMessage(b *testing.B) {
	msg := []byte(`{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"` +
		"fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+" +
		`"},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}`)
	b.Run("by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, _ = scanMedia(msg)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m inMsg
			_ = json.Unmarshal(msg, &m)
			_ = []byte(m.Media.Payload)
		}
	})
}
