package parley

import (
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/signaling"
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
		// What the hand-read path reads, it reads as encoding/json does.
		if fast, ok := scanMessage(data); ok {
			var want inMsg
			if err := json.Unmarshal(data, &want); err != nil || !reflect.DeepEqual(fast, want) {
				t.Fatalf("%q: by hand %+v, encoding/json %+v (%v)", data, fast, want, err)
			}
		}
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

// audioFrames packs frames for FuzzBinaryFrames: each is a big-endian
// 16-bit length, then that many bytes (fewer at the end of the input).
func audioFrames(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// badPackets is the count of caller frames dropped as not Opus.
func badPackets(t *testing.T) float64 {
	var m dto.Metric
	if err := droppedAudio.WithLabelValues("bad_packet").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// callInputDropped is the pipeline's count of caller frames pushed out of
// a call's input queue, read from this process's metrics.
func callInputDropped(t *testing.T) float64 {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "parley_call_dropped_input_frames_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// FuzzBinaryFrames: what a connection does with a run of binary frames
// (conn.audio). With a WebSocket call, each frame that a fresh decoder
// fed the same frames refuses is counted as a bad packet and, within the
// error budget, answered with a bad_request error that says so; each
// frame it decodes reaches the call, and nothing is said. Without a call,
// every frame is answered that binary frames carry call audio, and none
// is decoded. Never a panic, and a few dozen bad frames do not close the
// connection.
func FuzzBinaryFrames(f *testing.F) {
	enc, err := opus.NewEncoder(opus.Rate, 0)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := enc.Encode(make([]int16, opus.FrameSamples))
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x00}
	for _, call := range []bool{true, false} {
		f.Add(audioFrames(good, good, good), call)
		f.Add(audioFrames(good, garbage, good, []byte{}, good), call)
		f.Add(audioFrames(make([]byte, opus.MaxPacket+1), []byte{0x03, 0x81}, good[:len(good)/2]), call)
	}
	bad := make([][]byte, 30) // past the error budget
	for i := range bad {
		bad[i] = garbage
	}
	f.Add(audioFrames(bad...), true)

	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte, withCall bool) {
		var frames [][]byte
		for len(data) >= 2 && len(frames) < 64 {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
			frames = append(frames, data[2:2+n])
			data = data[2+n:]
		}
		srv := &Server{}
		srv.cfg.setDefaults()
		// No writer (there is no socket): what the connection says stays
		// queued, for the test to read.
		sock := signaling.SocketForTest(signaling.Config{}, log)
		defer sock.Close(signaling.ReasonBye)
		c := newConn(srv, sock)
		ref, _ := opus.NewDecoder(16000)
		if withCall {
			// A queue of one: every frame after the first that reaches the
			// call pushes one out, and is counted.
			v := &call.Voice{ASR: &fakes.ASR{}, TTS: &fakes.TTS{}, Config: call.Config{InputQueue: 1}}
			c.call.Store(v.NewCall("s", call.Media{Out: opus.Codec{}}, c, log))
			c.dec, _ = opus.NewDecoder(16000)
		}
		badBefore, inBefore := badPackets(t), callInputDropped(t)
		nbad, ngood, said := 0, 0, 0
		for i, fr := range frames {
			c.audio(fr)
			_, err := ref.Decode(fr)
			refused := !withCall || err != nil
			switch {
			case !withCall:
			case err != nil:
				nbad++
			default:
				ngood++
			}
			out := sock.SentForTest()
			// Below the budget every refusal is answered (however the
			// seconds fall); past it, some are only counted.
			if n := len(out) - said; n > 1 || !refused && n != 0 || refused && n == 0 && said < errorBudget {
				t.Fatalf("frame %d (%d bytes, refused: %v): %d replies after %d", i, len(fr), refused, n, said)
			}
			for ; said < len(out); said++ {
				_, ev, err := event.Decode(out[said])
				e, ok := ev.(event.Error)
				if err != nil || !ok || e.Code != codeBadRequest {
					t.Fatalf("frame %d: reply %s", i, out[said])
				}
				want := "binary frames carry call audio"
				if withCall {
					want = "not a 20 ms Opus packet and was dropped: "
				}
				if !strings.Contains(e.Message, want) {
					t.Fatalf("frame %d: %q does not say %q", i, e.Message, want)
				}
			}
		}
		if d := badPackets(t) - badBefore; int(d) != nbad {
			t.Fatalf("%d bad packets counted; %d of %d frames were bad", int(d), nbad, len(frames))
		}
		if d := callInputDropped(t) - inBefore; int(d) != max(ngood-1, 0) {
			t.Fatalf("%d frames pushed out of the call's queue of one; %d good frames reached it", int(d), ngood)
		}
		select {
		case <-sock.Done():
			t.Fatalf("closed (%v) after %d frames", sock.Reason(), len(frames))
		default:
		}
	})
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame := []byte(`{"type":"text","text":"client 17 turn 42"}`)
	b.Run("by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = decodeMessage(frame)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m inMsg
			_ = json.Unmarshal(frame, &m)
		}
	})
}
