package twilio

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/parleyhq/parley/signaling"
)

// The output sends each frame as a media message and a mark after it;
// the marks that come back say what was played; after a clear, the marks
// of the frames sent before it come back unplayed and do not count, those
// of later frames do; a second clear with nothing sent in between is not
// sent.
func TestOutputMarksAndClear(t *testing.T) {
	sock := signaling.SocketForTest(signaling.Config{}, slog.New(slog.DiscardHandler))
	o := &output{sock: sock}
	o.start(`MZ"1`) // a sid that needs escaping
	frame := make([]byte, 160)
	for i := range frame {
		frame[i] = byte(i)
	}
	send := func(n int) {
		for range n {
			if err := o.SendAudio(frame); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(5)
	sent := sock.SentForTest()
	if len(sent) != 10 {
		t.Fatalf("%d messages for 5 frames", len(sent))
	}
	for i := 0; i < 10; i += 2 {
		var media struct {
			Event, StreamSid string
			Media            struct{ Payload []byte }
		}
		var mark struct {
			Event, StreamSid string
			Mark             struct{ Name string }
		}
		if err := json.Unmarshal(sent[i], &media); err != nil || media.Event != "media" || media.StreamSid != `MZ"1` || string(media.Media.Payload) != string(frame) {
			t.Fatalf("message %d: %s (%v)", i, sent[i], err)
		}
		if err := json.Unmarshal(sent[i+1], &mark); err != nil || mark.Event != "mark" || mark.StreamSid != `MZ"1` || mark.Mark.Name != string(rune('1'+i/2)) {
			t.Fatalf("message %d: %s (%v)", i+1, sent[i+1], err)
		}
	}
	steps := []struct {
		echo   int64
		ours   bool
		played int64
	}{
		{1, true, 1}, {2, true, 2}, {0, false, 2}, {6, false, 2},
	}
	for _, s := range steps {
		if ours := o.echoed(s.echo); ours != s.ours || o.Played() != s.played {
			t.Fatalf("mark %d: ours %v, played %d; want %v, %d", s.echo, ours, o.Played(), s.ours, s.played)
		}
	}
	o.Flush()
	if msgs := sock.SentForTest(); len(msgs) != 11 || string(msgs[10]) != `{"event":"clear","streamSid":"MZ\"1"}` {
		t.Fatalf("after the flush: %s", msgs[len(msgs)-1])
	}
	for n := int64(3); n <= 5; n++ { // returned by the clear: not played
		if !o.echoed(n) || o.Played() != 2 {
			t.Fatalf("mark %d returned by the clear counted: played %d", n, o.Played())
		}
	}
	o.Flush() // nothing sent since the last
	if n := len(sock.SentForTest()); n != 11 {
		t.Fatalf("a second clear with nothing sent: %d messages", n)
	}
	send(2)
	if !o.echoed(6) || o.Played() != 6 {
		t.Fatalf("a mark after the clear: played %d", o.Played())
	}
	sock.Close(signaling.ReasonBye)
	if err := o.SendAudio(frame); err != signaling.ErrClosed {
		t.Fatalf("SendAudio on a closed socket: %v", err)
	}
}
