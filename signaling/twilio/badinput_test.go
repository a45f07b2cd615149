package twilio

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/event"
)

// counted is the value of a counter of this package with one label.
func counted(t testing.TB, name, label string) float64 {
	t.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func fakeVoice() replicaOpts {
	return replicaOpts{asr: &fakes.ASR{}, tts: &fakes.TTS{}}
}

// Messages Twilio does not send are dropped and counted, the stream going
// on (a key press after them is stored): malformed JSON, a binary frame,
// an unknown event, media whose payload is not base64 or empty, media,
// marks and key presses before the start, a key that is no key, a mark
// the server never sent, a second start. Every goroutine ends with the
// streams.
func TestPhoneBadMessagesAreDropped(t *testing.T) {
	testkit.CheckGoroutines(t)
	r := startReplica(t, &fakes.Echo{}, fakeVoice())
	text := func(s string) func(f *fakeTwilio) { return func(f *fakeTwilio) { _ = f.write([]byte(s)) } }
	tests := []struct {
		name   string
		before bool // sent before the start
		send   func(f *fakeTwilio)
		why    string
	}{
		{"malformed JSON", false, text(`{"event":"media",`), "malformed"},
		{"not an object", false, text(`[1,2,3]`), "malformed"},
		{"a binary frame", false, func(f *fakeTwilio) {
			f.wmu.Lock()
			_ = f.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
			f.wmu.Unlock()
		}, "binary"},
		{"an unknown event", false, text(`{"event":"dance","streamSid":"x"}`), "unknown_event"},
		{"bad base64", false, text(`{"event":"media","media":{"track":"inbound","payload":"!!!not base64"}}`), "bad_payload"},
		{"an empty payload", false, text(`{"event":"media","media":{"track":"inbound","payload":""}}`), "bad_payload"},
		{"a key that is no key", false, text(`{"event":"dtmf","dtmf":{"digit":"55"}}`), "bad_digit"},
		{"a mark never sent", false, text(`{"event":"mark","mark":{"name":"12"}}`), "bad_mark"},
		{"a mark that is not ours", false, text(`{"event":"mark","mark":{"name":"greeting"}}`), "bad_mark"},
		{"a second start", false, func(f *fakeTwilio) { f.start(wantFormat, nil) }, "start_again"},
		{"media before the start", true, func(f *fakeTwilio) {
			text(`{"event":"media","media":{"track":"inbound","payload":"` + base64.StdEncoding.EncodeToString(make([]byte, 160)) + `"}}`)(f)
		}, "before_start"},
		{"a key before the start", true, text(`{"event":"dtmf","dtmf":{"digit":"1"}}`), "before_start"},
		{"a mark before the start", true, text(`{"event":"mark","mark":{"name":"1"}}`), "before_start"},
		{"a start without its start", true, text(`{"event":"start","streamSid":"MZ1"}`), "bad_start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			was := counted(t, "parley_twilio_invalid_messages_total", tc.why)
			f := dialTwilio(t, r.mediaURL(), nil, 0)
			if tc.before {
				tc.send(f)
			}
			f.start(wantFormat, nil)
			id := r.sessionOf(t, f.callSid)
			if !tc.before {
				tc.send(f)
			}
			f.dtmf("7")
			r.waitEvent(t, id, "the key press after the bad message", func(ev event.Event) bool { d, ok := ev.(event.DTMF); return ok && d.Digit == "7" })
			if got := counted(t, "parley_twilio_invalid_messages_total", tc.why); got != was+1 {
				t.Fatalf("invalid_messages_total{why=%q} went from %v to %v", tc.why, was, got)
			}
			f.stop()
			if code := f.closeCode(); code != websocket.CloseNormalClosure {
				t.Fatalf("closed %d", code)
			}
		})
	}
}

// A stream whose audio is not 8 kHz mu-law mono is refused: closed with
// 1003 (unsupported data), no session made. A flood of bad messages
// closes the stream with 1008 (policy): one bad message never does.
func TestPhoneStreamsRefused(t *testing.T) {
	testkit.CheckGoroutines(t)
	r := startReplica(t, &fakes.Echo{}, fakeVoice())
	for _, format := range []mediaFormat{
		{Encoding: "audio/x-l16", SampleRate: 16000, Channels: 1},
		{Encoding: "audio/x-mulaw", SampleRate: 16000, Channels: 1},
		{Encoding: "audio/x-mulaw", SampleRate: 8000, Channels: 2},
		{},
	} {
		f := dialTwilio(t, r.mediaURL(), nil, 0)
		f.start(format, nil)
		if code := f.closeCode(); code != websocket.CloseUnsupportedData {
			t.Fatalf("%+v: closed %d, want 1003", format, code)
		}
	}
	if keys, _ := r.rdb.Keys(context.Background(), "parley:{*}:meta").Result(); len(keys) != 0 {
		t.Fatalf("refused streams made sessions: %v", keys)
	}

	f := dialTwilio(t, r.mediaURL(), nil, 0)
	f.start(wantFormat, nil)
	r.sessionOf(t, f.callSid)
	for i := 0; i < 2*floodBudget; i++ {
		if f.write([]byte(`{"event":`)) != nil {
			break // closed already
		}
	}
	if code := f.closeCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("a flood: closed %d, want 1008", code)
	}
}

// A server without a voice stack takes no calls: its webhook says so to
// the caller and hangs up, and a stream is closed 1003.
func TestPhoneWithoutVoice(t *testing.T) {
	r := startReplica(t, &fakes.Echo{}, replicaOpts{})
	resp, err := http.PostForm(r.base+VoicePath, map[string][]string{"CallSid": {"CA1"}})
	if err != nil {
		t.Fatal(err)
	}
	var doc twiml
	_ = decodeXML(resp.Body, &doc)
	resp.Body.Close()
	if doc.Connect != nil || doc.Hangup == nil || doc.Say == nil || doc.Say.Text != noVoice {
		t.Fatalf("%+v", doc)
	}
	f := dialTwilio(t, r.mediaURL(), nil, 0)
	f.start(wantFormat, nil)
	if code := f.closeCode(); code != websocket.CloseUnsupportedData {
		t.Fatalf("closed %d", code)
	}
}

// With an auth token, both endpoints need Twilio's signature over the
// public URL (-public-url), not the server's own: missing or bad is a
// 403, good is served. The gateway's own tokens (on here) are not asked
// of Twilio, which cannot send them.
func TestPhoneSignatures(t *testing.T) {
	const token, public = "twilio-token", "https://voice.example.com"
	opts := fakeVoice()
	// A token and a public URL: the test is of the signatures they make
	// (the defaults check none: TestPhoneCall, and cmd/parley's tests).
	opts.twilio = Config{AuthToken: token, PublicURL: public}
	opts.ws.Auth.Tokens = []string{"parley-token"} // on, to show that Twilio is not asked for one
	r := startReplica(t, &fakes.Echo{}, opts)
	form := url.Values{"CallSid": {"CA1"}, "From": {"+15550100"}}
	goodHook := Signature(token, public+VoicePath, form)
	goodStream := Signature(token, "wss://voice.example.com"+MediaPath, nil)
	for _, tc := range []struct {
		name      string
		hook, ws  string
		hookCode  int
		wsRefused bool
	}{
		{"missing", "", "", http.StatusForbidden, true},
		{"bad", "bm90IGEgc2lnbmF0dXJl", "bm90IGEgc2lnbmF0dXJl", http.StatusForbidden, true},
		{"over the server's own URL", Signature(token, r.base+VoicePath, form), Signature(token, r.mediaURL(), nil), http.StatusForbidden, true},
		{"good", goodHook, goodStream, http.StatusOK, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", r.base+VoicePath, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.hook != "" {
				req.Header.Set(SignatureHeader, tc.hook)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.hookCode {
				t.Fatalf("webhook: %s, want %d", resp.Status, tc.hookCode)
			}
			h := http.Header{}
			if tc.ws != "" {
				h.Set(SignatureHeader, tc.ws)
			}
			ws, wresp, err := websocket.DefaultDialer.Dial(r.mediaURL(), h)
			if tc.wsRefused {
				if err == nil || wresp == nil || wresp.StatusCode != http.StatusForbidden {
					t.Fatalf("stream: %v %v, want 403", wresp, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("stream: %v %v", wresp, err)
			}
			ws.Close()
		})
	}
}

// With DTMF "event" (not the default, which makes a turn: TestPhoneCall),
// a key press is stored, with no turn and no transcript.
func TestPhoneKeyPressStoredOnly(t *testing.T) {
	opts := fakeVoice()
	opts.twilio.DTMF = DTMFEvent // the setting under test
	r := startReplica(t, &fakes.Echo{}, opts)
	f := dialTwilio(t, r.mediaURL(), nil, 0)
	f.start(wantFormat, nil)
	id := r.sessionOf(t, f.callSid)
	f.dtmf("#")
	key := r.waitEvent(t, id, "the key press", func(ev event.Event) bool { _, ok := ev.(event.DTMF); return ok }).(event.DTMF)
	if key != (event.DTMF{Digit: "#"}) {
		t.Fatalf("stored %+v", key)
	}
	f.dtmf("1") // after it: the first was handled whole
	r.waitEvent(t, id, "the second key press", func(ev event.Event) bool { d, ok := ev.(event.DTMF); return ok && d.Digit == "1" })
	for _, ev := range r.events(t, id) {
		if _, ok := ev.(event.DTMF); !ok {
			t.Fatalf("a key press stored only made %T %+v", ev, ev)
		}
	}
}
