//go:build !nospeech

package twilio

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/sphinx"
)

var (
	speechOnce sync.Once
	asr        *sphinx.ASR
	voice      *flite.Voice
	speechErr  error
)

// offline is the offline speech stack, loaded once per test binary.
func offline(t *testing.T) (*sphinx.ASR, *flite.Voice) {
	speechOnce.Do(func() {
		if asr, speechErr = sphinx.New(sphinx.Config{Decoders: 2}); speechErr == nil {
			voice, speechErr = flite.New(flite.Config{})
		}
	})
	if speechErr != nil {
		t.Fatal(speechErr)
	}
	return asr, voice
}

// pcm16 is text spoken by flite kal16, at 16 kHz.
func pcm16(t *testing.T, v *flite.Voice, text string) []int16 {
	t.Helper()
	var pcm []int16
	if err := v.Synthesize(context.Background(), text, func(p []int16) error { pcm = append(pcm, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	return pcm
}

// mulawSpeech is text spoken by flite as a phone line carries it: 8 kHz
// mu-law in 20 ms frames of 160 bytes, with silence before and after.
func mulawSpeech(t *testing.T, v *flite.Voice, text string, before, after time.Duration) [][]byte {
	t.Helper()
	down, err := media.NewResampler(16000, g711.Rate)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, int(before.Seconds()*g711.Rate))
	pcm = down.Process(pcm16(t, v, text), pcm)
	pcm = append(pcm, make([]int16, int(after.Seconds()*g711.Rate))...)
	var frames [][]byte
	for i := 0; i+g711.Frame <= len(pcm); i += g711.Frame {
		frames = append(frames, g711.MuLaw.Append(nil, pcm[i:i+g711.Frame]))
	}
	return frames
}

func silence(d time.Duration) [][]byte {
	frames := make([][]byte, int(d/media.FrameDuration))
	for i := range frames {
		frames[i] = g711.MuLaw.Append(nil, make([]int16, g711.Frame))
	}
	return frames
}

// webhookParams asks the server's webhook for the call's TwiML, as Twilio
// does when the number is called, and returns the stream's parameters:
// what Twilio sends back in the start message's customParameters.
func webhookParams(t *testing.T, r *replica, callSid string) map[string]string {
	t.Helper()
	form := url.Values{"CallSid": {callSid}, "From": {"+15550100"}, "To": {"+18005550199"}, "AccountSid": {"AC0123"}}
	resp, err := http.PostForm(r.base+VoicePath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc twiml
	if err := decodeXML(resp.Body, &doc); err != nil || resp.StatusCode != 200 || doc.Connect == nil {
		t.Fatalf("webhook: %s, %v, %+v", resp.Status, err, doc)
	}
	if host := strings.TrimPrefix(r.base, "http://"); doc.Connect.Stream.URL != "wss://"+host+MediaPath {
		t.Fatalf("stream URL %q: want wss:// on the request's Host", doc.Connect.Stream.URL)
	}
	p := map[string]string{}
	for _, pr := range doc.Connect.Stream.Params {
		p[pr.Name] = pr.Value
	}
	return p
}

const greeting = "hello"

// A phone call end to end, with the defaults: Twilio asks the webhook for
// TwiML, opens the stream, and the caller says hello, in flite speech
// as 8 kHz mu-law at real time. The answer comes back as 20 ms mu-law
// media, paced at real time (no burst beyond the pacer's lead of 3), a
// mark after each frame; the session keeps the call's identifiers. A key
// press is stored and answered as a turn. stop ends the call: the socket
// closes normally and every goroutine of the call ends.
func TestPhoneCall(t *testing.T) {
	testkit.CheckGoroutines(t)
	asr, v := offline(t)
	r := startReplica(t, local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	f := dialTwilio(t, r.mediaURL(), nil, 100*time.Millisecond)
	params := webhookParams(t, r, f.callSid)
	f.start(wantFormat, params)
	id := r.sessionOf(t, f.callSid)
	md, err := r.store.Metadata(context.Background(), id)
	if err != nil || md["twilio.stream_sid"] != f.sid || md["twilio.account_sid"] != "AC0123" ||
		md["twilio.param.From"] != "+15550100" || md["twilio.param.To"] != "+18005550199" || md["twilio.param.CallSid"] != f.callSid {
		t.Fatalf("metadata %v %v", md, err)
	}

	// pocketsphinx's model is for 16 kHz audio, and hears the phone's 4 kHz
	// band poorly ("what time is it" comes out "but i'm at it"): a greeting
	// is what it gets right through the phone's band.
	if err := f.speak(mulawSpeech(t, v, greeting, 500*time.Millisecond, 1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	done := r.waitEvent(t, id, "reply", replyDone(1)).(event.ReplyDone)
	if !strings.HasPrefix(done.Text, "Hello! ") || done.Interrupted {
		t.Fatalf("reply %+v", done)
	}
	var heard *event.Transcript
	for _, ev := range r.events(t, id) {
		if tr, ok := ev.(event.Transcript); ok && tr.Turn == 1 {
			heard = &tr
		}
	}
	if heard == nil || heard.Text != greeting || heard.Source != event.SourceVoice {
		t.Fatalf("transcript %+v", heard)
	}
	// Keep the line open (silence) while the answer plays, and wait for
	// most of it before waiting for its end: a pause on a loaded machine
	// must not pass for the end.
	go func() { _ = f.speak(silence(3 * time.Second)) }() // ends when sent, or the socket fails
	want := len(pcm16(t, v, done.Text)) / 2 / g711.Frame
	f.waitFor("most of the answer", 60*time.Second, func(in []got, _ []clearSeen) bool { return len(in) >= want*9/10 })
	f.quiet(time.Second)
	in, marks, msgs, clears := f.snapshot()
	checkAnswerAudio(t, v, done.Text, in, marks, msgs)
	if len(clears) != 0 {
		t.Fatalf("%d clears in a call nobody interrupted", len(clears))
	}

	// A key press: stored, and a turn saying so, answered.
	f.dtmf("5")
	key := r.waitEvent(t, id, "key press", func(ev event.Event) bool { _, ok := ev.(event.DTMF); return ok }).(event.DTMF)
	if key != (event.DTMF{Turn: 2, Digit: "5"}) {
		t.Fatalf("key press %+v", key)
	}
	r.waitEvent(t, id, "the key's turn", func(ev event.Event) bool {
		tr, ok := ev.(event.Transcript)
		return ok && tr.Turn == 2 && tr.Final && tr.Text == "The caller pressed 5."
	})
	if d := r.waitEvent(t, id, "the key's reply", replyDone(2)).(event.ReplyDone); !strings.Contains(d.Text, "The caller pressed 5.") {
		t.Fatalf("the key's reply %q", d.Text)
	}

	f.stop()
	if code := f.closeCode(); code != websocket.CloseNormalClosure {
		t.Fatalf("closed with %d after stop; want 1000", code)
	}
}

// checkAnswerAudio: the bot's answer is 20 ms mu-law frames, each with a
// mark after it naming its number; as long as flite's rendering of the
// reply at 8 kHz; paced: never ahead of real time by more than the
// pacer's lead (a loaded machine only delays frames), and spread over
// most of its own duration.
func checkAnswerAudio(t *testing.T, v *flite.Voice, reply string, in []got, marks []int64, msgs []string) {
	t.Helper()
	for i, g := range in {
		if len(g.payload) != g711.Frame {
			t.Fatalf("frame %d has %d bytes; want 160 (20 ms of 8 kHz mu-law)", i, len(g.payload))
		}
	}
	for i := 0; i+1 < len(msgs); i += 2 {
		if msgs[i] != "media" || msgs[i+1] != "mark" {
			t.Fatalf("message %d, %d: %s, %s; want media then its mark", i, i+1, msgs[i], msgs[i+1])
		}
	}
	for i, n := range marks {
		if n != int64(i+1) {
			t.Fatalf("mark %d is named %d", i, n)
		}
	}
	want := len(pcm16(t, v, reply)) / 2 / g711.Frame
	if n := len(in); n < want*9/10 || n > want*11/10+3 {
		t.Fatalf("%d frames of the bot's audio; the reply spoken is about %d", n, want)
	}
	var worst time.Duration
	for k, g := range in {
		early := time.Duration(k-3)*media.FrameDuration - g.at.Sub(in[0].at)
		worst = max(worst, early)
		// Frame k may leave (k-3) ticks after the first, the lead of 3
		// having gone at once: a tick of slack for the ticker's phase.
		if early > media.FrameDuration+5*time.Millisecond {
			t.Fatalf("frame %d came %v ahead of real time: a burst beyond the pacer's lead", k, early)
		}
	}
	span := in[len(in)-1].at.Sub(in[0].at)
	audio := time.Duration(len(in)) * media.FrameDuration
	if span < audio/2 {
		t.Fatalf("%v of audio arrived within %v", audio, span)
	}
	var gaps []time.Duration
	for k := 4; k < len(in); k++ {
		gaps = append(gaps, in[k].at.Sub(in[k-1].at))
	}
	p50, p99 := percentiles(gaps)
	t.Logf("%d frames over %v (%v of audio); gaps after the lead p50 %v, p99 %v; at most %v ahead of real time", len(in), span, audio, p50, p99, worst)
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2], s[len(s)*99/100]
}
