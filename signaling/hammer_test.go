package signaling_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/signaling"
)

// Many connections hammer the server with bad frames while good sessions
// carry on: every good turn is answered, exactly, with no error; the bad
// connections get errors or are closed for a documented reason; the
// server stays up. (Latency under the hammer is logged, not asserted.)
func TestBadFramesHammerWhileGoodSessionsCarryOn(t *testing.T) {
	r := startReplica(t, newRedis(t), &echoLLM{max: 1}, replicaOpts{ws: signaling.Config{MaxMessage: 4096, MaxText: 100}})
	bad := []struct {
		kind int
		data []byte
	}{
		{websocket.TextMessage, []byte(`{"type":"text","text":`)},
		{websocket.TextMessage, []byte(`{"type":"dance"}`)},
		{websocket.TextMessage, []byte(`[]`)},
		{websocket.TextMessage, []byte(`{"type":"text","text":"` + strings.Repeat("x", 200) + `"}`)},
		{websocket.TextMessage, []byte(`{"type":"offer","sdp":"v=0"}`)},
		{websocket.TextMessage, []byte("\xff\xfe\x00")},
		{websocket.BinaryMessage, []byte{0xff, 0xff, 0xff, 0xff, 0x00}},
		{websocket.TextMessage, []byte(`{"type":"hello","session":"{evil}","token":"x"}`)},
	}
	const attackers, good, turns = 30, 4, 10
	stop := make(chan struct{})
	var errorsSeen, closes atomic.Int64
	var reasons sync.Map
	var wg sync.WaitGroup
	for i := 0; i < attackers; i++ {
		wg.Add(1)
		go func() { // one attacker; ends at stop or when closed
			defer wg.Done()
			ws, _, err := websocket.DefaultDialer.Dial(r.URL, nil)
			if err != nil {
				t.Errorf("attacker dial: %v", err)
				return
			}
			defer ws.Close()
			if i%2 == 0 { // half of them say hello first
				_ = ws.WriteJSON(map[string]any{"type": "hello"})
			}
			go func() { // reads errors and the close; ends when the socket does
				for {
					_, b, err := ws.ReadMessage()
					if err != nil {
						var ce *websocket.CloseError
						if errors.As(err, &ce) {
							closes.Add(1)
							reasons.Store(fmt.Sprintf("%d %s", ce.Code, ce.Text), true)
						}
						return
					}
					if strings.Contains(string(b), `"type":"error"`) {
						errorsSeen.Add(1)
					}
				}
			}()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				f := bad[(i+k)%len(bad)]
				if k%50 == 49 { // now and then a frame past the read cap
					f.kind, f.data = websocket.TextMessage, []byte(strings.Repeat("y", 5000))
				}
				_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
				if ws.WriteMessage(f.kind, f.data) != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}

	var lat sync.Map
	var gw sync.WaitGroup
	for g := 0; g < good; g++ {
		gw.Add(1)
		go func() { // one good session; ends after its turns
			defer gw.Done()
			c := dial(t, r.URL)
			c.hello()
			for k := 1; k <= turns; k++ {
				text := fmt.Sprintf("good %d turn %d", g, k)
				t0 := time.Now()
				c.send(map[string]any{"type": "text", "text": text})
				for {
					ev, err := c.read(20 * time.Second)
					if err != nil {
						t.Errorf("good session %d: %v", g, err)
						return
					}
					if ev.Type == "error" {
						t.Errorf("good session %d got an error: %s", g, ev.raw)
						return
					}
					if ev.Type == "reply.done" && ev.Turn == int64(k) {
						if ev.Text != "echo: "+text {
							t.Errorf("good session %d turn %d: %q", g, k, ev.Text)
						}
						lat.Store(fmt.Sprint(g, k), time.Since(t0))
						break
					}
				}
			}
		}()
	}
	gw.Wait()
	close(stop)
	wg.Wait()

	if errorsSeen.Load() == 0 {
		t.Fatal("the attackers were never told what was wrong")
	}
	reasons.Range(func(k, _ any) bool {
		switch k {
		// gorilla closes a frame past the read cap itself: 1009, no text.
		case "4429 too_many_errors", "1009 ", "1009 message_too_big", "4401 unauthorized":
		default:
			t.Errorf("an attacker was closed for %q", k)
		}
		return true
	})
	var worst time.Duration
	answered := 0
	lat.Range(func(_, v any) bool { worst = max(worst, v.(time.Duration)); answered++; return true })
	if answered != good*turns {
		t.Fatalf("%d of the %d good turns were answered", answered, good*turns)
	}
	t.Logf("good turns: %d answered, slowest %v; attackers: %d errors, %d closes", answered, worst, errorsSeen.Load(), closes.Load())
	// The server is still up for a new session.
	c := dial(t, r.URL)
	c.hello()
}
