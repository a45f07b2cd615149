package parley_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/parley"
)

// fakeASR and fakeTTS are speech providers at no cost (the test kit's:
// nothing is ever recognised, and a character is 4 ms of tone), so that
// the hammer measures the server, not the speech.
func fakeASR() *fakes.ASR { return &fakes.ASR{} }
func fakeTTS() *fakes.TTS { return &fakes.TTS{PerChar: 4 * time.Millisecond} }

// attack is one kind of bad client: what it says first, the frames it
// then sends without pause, what every error it gets must say, and the
// close reasons ("code text") it may be sent besides the ones any bad
// client may get.
type attack struct {
	name   string
	hello  map[string]any // nil: none
	frames []wsFrame
	says   string // "" for any message
	closes []string
	closed bool // every connection must end with one of closes
}

type wsFrame struct {
	kind int
	data []byte
}

func textFrame(s string) wsFrame { return wsFrame{websocket.TextMessage, []byte(s)} }

// outcome is what one bad connection got.
type outcome struct {
	errors int      // error events
	wrong  []string // error events without a code and message, or not saying what they should
	close  string   // the server's close frame, "code text"; "" if none came
}

// Many connections hammer a real replica with bad frames while good
// sessions carry on: every good turn is answered, exactly, with no error
// event; every bad connection is told what is wrong, or closed for a
// documented reason; the server stays up; and once it has shut down no
// goroutine is left. (The good turns' latency under the hammer is logged,
// not asserted.)
func TestBadFramesHammerWhileGoodSessionsCarryOn(t *testing.T) {
	const maxMessage, maxText = 4096, 100
	testkit.CheckGoroutines(t) // every goroutine of the sockets, calls and replica ends
	rdb := newRedis(t)
	r := startReplica(t, rdb, &echoLLM{max: 1}, replicaOpts{
		// Smaller caps than the defaults, so that oversized frames and
		// texts are cheap to send; the defaults have tests of their own.
		ws:     signaling.Config{MaxMessage: maxMessage},
		parley: parley.Config{MaxText: maxText},
		asr:    fakeASR(), tts: fakeTTS(),
	})
	badPackets := metricValue(t, "parley_ws_dropped_audio_total", "why", "bad_packet")

	// The good sessions: four typed chats and one WebSocket call whose
	// turns are typed (answered aloud as well as in text).
	const chats, turns = 4, 20
	var good []*client
	for range chats {
		c := dial(t, r.URL)
		c.Hello()
		good = append(good, c)
	}
	call := dial(t, r.URL)
	call.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
	if ev := call.Next(); ev.Type != "session" {
		t.Fatalf("call hello: %s", ev.Raw)
	}
	good = append(good, call)

	enc, err := opus.NewEncoder(opus.Rate, 0)
	if err != nil {
		t.Fatal(err)
	}
	goodPkt, _ := enc.Encode(make([]int16, opus.FrameSamples))
	hello := map[string]any{"type": "hello"}
	attacks := []attack{
		{name: "malformed JSON", hello: hello, says: "malformed JSON",
			frames: []wsFrame{textFrame(`{"type":"text","text":`), textFrame(`{"type":"text","text":42}`), textFrame("\xff\xfe\x00"), textFrame(`[]`)}},
		{name: "unknown types", says: "type",
			frames: []wsFrame{textFrame(`{"type":"dance"}`), textFrame(`{}`), textFrame(`{"type":""}`), textFrame(`{"type":"` + strings.Repeat("é", 50) + `"}`)}},
		{name: "messages before hello", says: "before hello",
			frames: []wsFrame{textFrame(`{"type":"text","text":"hi"}`), textFrame(`{"type":"interrupt"}`), textFrame(`{"type":"offer","sdp":"v=0"}`)},
			closes: []string{"4000 hello_timeout"}},
		{name: "too long and empty text", hello: hello, says: "text",
			frames: []wsFrame{textFrame(`{"type":"text","text":"` + strings.Repeat("x", 2*maxText) + `"}`), textFrame(`{"type":"text","text":"   "}`), textFrame(`{"type":"text"}`)}},
		{name: "frames past the read cap", hello: hello, closed: true,
			frames: []wsFrame{textFrame(`{"type":"text","text":"` + strings.Repeat("y", maxMessage) + `"}`), {websocket.BinaryMessage, make([]byte, maxMessage+1)}}},
		{name: "binary frames without a call", hello: hello, says: "binary frames carry call audio",
			frames: []wsFrame{{websocket.BinaryMessage, []byte{0xff, 0xfe, 0xfd}}, {websocket.BinaryMessage, goodPkt}}},
		{name: "garbage Opus on a call", hello: map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws"}},
			says: "not a 20 ms Opus packet",
			// A good packet among them is taken without a word.
			frames: []wsFrame{{websocket.BinaryMessage, []byte{0xff, 0xff, 0xff, 0xff, 0x00}}, {websocket.BinaryMessage, nil}, {websocket.BinaryMessage, goodPkt},
				{websocket.BinaryMessage, make([]byte, opus.MaxPacket+1)}, {websocket.BinaryMessage, []byte{0xff, 0xfe, 0xfd}}}},
		{name: "forged resume", hello: map[string]any{"type": "hello", "session": good[0].Session, "token": "forged"},
			says: "wrong", closes: []string{"4401 unauthorized"}, closed: true,
			frames: []wsFrame{textFrame(`{"type":"text","text":"let me in"}`)}},
		{name: "bad hellos", says: "", closes: []string{"4000 hello_timeout"},
			frames: []wsFrame{textFrame(`{"type":"hello","audio":{"transport":"ws","codec":"pcmu"}}`), textFrame(`{"type":"hello","audio":{"transport":"pigeon"}}`),
				textFrame(`{"type":"hello","session":"00000000000000000000000000000000","token":"x","last_event":"nope"}`),
				textFrame(`{"type":"hello","session":"00000000000000000000000000000000","token":"x"}`)}},
	}
	// All of them on one connection, but for the frames that are good
	// turns once hello is said: this is not a load test of the model.
	var all []wsFrame
	for _, a := range attacks {
		if a.name != "messages before hello" && a.name != "forged resume" {
			all = append(all, a.frames...)
		}
	}
	attacks = append(attacks, attack{name: "everything", hello: hello, frames: all})
	// Any bad client may be closed for a flood of errors or a frame past
	// the cap (gorilla closes that one itself: 1009 without a reason).
	anyClose := []string{"4429 too_many_errors", "1009 message_too_big", "1009 "}

	const attackers = 50
	stop := make(chan struct{})
	var mu sync.Mutex
	outcomes := make(map[string][]outcome)
	var wg sync.WaitGroup
	for i := range attackers {
		a := attacks[i%len(attacks)]
		wg.Add(1)
		go func() { // one attacker: connects again whenever closed, until stop
			defer wg.Done()
			for k := i; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				o, err := attackOnce(r.URL, a, k, stop)
				if err != nil {
					t.Errorf("%s: %v", a.name, err)
					return
				}
				mu.Lock()
				outcomes[a.name] = append(outcomes[a.name], o)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	// The good sessions carry on meanwhile.
	lat := make([][]time.Duration, len(good))
	var gw sync.WaitGroup
	for g, c := range good {
		gw.Add(1)
		go func() { // one good session; ends after its turns
			defer gw.Done()
			n := turns
			if c == call {
				n = turns / 2
			}
			for k := 1; k <= n; k++ {
				msg := fmt.Sprintf("good %d turn %d", g, k)
				t0 := time.Now()
				_ = c.WS.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := c.WS.WriteJSON(map[string]any{"type": "text", "text": msg}); err != nil {
					t.Errorf("good session %d: send: %v", g, err)
					return
				}
				for {
					ev, err := c.Read(30 * time.Second) // a hang, not a timing assertion
					if err != nil {
						t.Errorf("good session %d turn %d: %v", g, k, err)
						return
					}
					if ev.Type == "error" {
						t.Errorf("good session %d got an error: %s", g, ev.Raw)
						return
					}
					if ev.Type == "reply.done" && ev.Turn == int64(k) {
						if ev.Text != "echo: "+msg {
							t.Errorf("good session %d turn %d: %q", g, k, ev.Text)
						}
						lat[g] = append(lat[g], time.Since(t0))
						break
					}
				}
			}
		}()
	}
	gw.Wait()
	close(stop)
	wg.Wait()

	for g := range good {
		want := turns
		if good[g] == call {
			want = turns / 2
		}
		if len(lat[g]) != want {
			t.Errorf("good session %d: %d of its %d turns answered", g, len(lat[g]), want)
		}
		if len(lat[g]) > 0 {
			t.Logf("good session %d: %d turns, slowest %v, median %v", g, len(lat[g]), slices.Max(lat[g]), median(lat[g]))
		}
	}
	for _, a := range attacks {
		conns := outcomes[a.name]
		if len(conns) == 0 {
			t.Errorf("%s: no connection made", a.name)
		}
		errs, closes := 0, map[string]int{}
		for n, o := range conns {
			errs += o.errors
			if o.close != "" {
				closes[o.close]++
			}
			documented := slices.Contains(anyClose, o.close) || slices.Contains(a.closes, o.close)
			switch {
			case len(o.wrong) > 0:
				t.Errorf("%s, connection %d: errors %q", a.name, n, o.wrong)
			case o.close != "" && !documented:
				t.Errorf("%s, connection %d: closed with %q", a.name, n, o.close)
			case a.closed && o.close == "":
				t.Errorf("%s, connection %d: not closed", a.name, n)
			case o.errors == 0 && !documented:
				t.Errorf("%s, connection %d: neither told what was wrong nor closed", a.name, n)
			}
		}
		t.Logf("%s: %d connections, %d errors, closes %v", a.name, len(conns), errs, closes)
	}
	if got := metricValue(t, "parley_ws_dropped_audio_total", "why", "bad_packet"); got <= badPackets {
		t.Error("no garbage Opus packet was counted")
	}

	// The server is still up for a new session.
	c := dial(t, r.URL)
	c.Hello()
	c.Send(map[string]any{"type": "text", "text": "after the storm"})
	if evs := c.Until("reply.done", 1); evs[len(evs)-1].Text != "echo: after the storm" {
		t.Fatalf("after the storm: %s", evs[len(evs)-1].Raw)
	}

	// Shut down; the leak check looks once the cleanups have run.
	for _, c := range append(good, c) {
		c.WS.Close()
	}
	r.kill()
	http.DefaultClient.CloseIdleConnections() // the metrics reads'
}

// attackOnce makes one connection of attack a and sends its frames, from
// the k-th on, until stop (one at least) or until the server closes it;
// after stop it waits (a while) for the answer to what it sent. err is for the test's
// own failures, not the server's answers.
func attackOnce(url string, a attack, k int, stop <-chan struct{}) (outcome, error) {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return outcome{}, fmt.Errorf("dial: %w", err)
	}
	defer ws.Close()
	var o outcome
	answered := make(chan struct{}) // closed at the first error event or the end
	done := make(chan struct{})
	go func() { // the reader: ends when the socket does
		defer close(done)
		once := sync.OnceFunc(func() { close(answered) })
		defer once()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					o.close = fmt.Sprintf("%d %s", ce.Code, ce.Text)
				}
				return
			}
			var ev msg
			if json.Unmarshal(b, &ev) != nil || ev.Type != "error" {
				continue
			}
			o.errors++
			if ev.Code == "" || strings.TrimSpace(ev.Message) == "" || !strings.Contains(ev.Message, a.says) {
				o.wrong = append(o.wrong, string(b))
			}
			once()
		}
	}()
	if a.hello != nil {
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = ws.WriteJSON(a.hello)
	}
send:
	for ; ; k++ { // one frame at least, then until stop
		f := a.frames[k%len(a.frames)]
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if ws.WriteMessage(f.kind, f.data) != nil {
			break
		}
		time.Sleep(time.Millisecond)
		select {
		case <-stop:
			break send
		case <-done:
			break send
		default:
		}
	}
	// An attack whose every connection must be closed waits for the close
	// (the server's error comes before its close frame: closing at the
	// error, the client could miss the frame), the others for an answer.
	wait := answered
	if a.closed {
		wait = done
	}
	select {
	case <-wait:
	case <-time.After(10 * time.Second): // a hang guard: the check after says what was missing
	}
	ws.Close()
	<-done
	return o, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
