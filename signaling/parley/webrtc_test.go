//go:build !nospeech

package parley_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/local"
)

// TestWebRTC runs the WebRTC tests on a host whose only network is
// loopback (a laptop offline, a container, a sandbox): the test binary
// re-executes itself in a new network namespace where only lo is up. The
// server keeps the default rtc.Config; the pion client stands for a
// browser on the same host.
func TestWebRTC(t *testing.T) {
	if !testkit.InLoopbackNetns(t) {
		return
	}
	asr, v := offline(t)
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v})
	speech := opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond)

	t.Run("a call with the defaults", func(t *testing.T) { callOverWebRTC(t, r, speech) })
	t.Run("a call whose ICE never completes moves to the WebSocket", func(t *testing.T) { moveToWebSocket(t, r, speech) })
}

func clientAPI(t *testing.T) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var s webrtc.SettingEngine
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetIncludeLoopbackCandidate(true)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s))
}

// caller is a pion peer with a microphone track, as a browser's.
type caller struct {
	pc    *webrtc.PeerConnection
	mic   *webrtc.TrackLocalStaticSample
	offer webrtc.SessionDescription // without candidates: they are trickled
}

func newCaller(t *testing.T) *caller {
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	mic, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "caller")
	if _, err := pc.AddTrack(mic); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &caller{pc: pc, mic: mic, offer: offer}
}

// candidateIP is the address of an ICE candidate line
// ("candidate:<foundation> <component> <protocol> <priority> <address> …").
func candidateIP(line string) netip.Addr {
	f := strings.Fields(line)
	if len(f) < 5 {
		return netip.Addr{}
	}
	ip, _ := netip.ParseAddr(f[4])
	return ip
}

func (k *caller) sendOffer(c *client) {
	c.Send(map[string]any{"type": "offer", "sdp": map[string]string{"type": "offer", "sdp": k.offer.SDP}})
}

// webrtcHello starts a call over WebRTC on a new socket.
func webrtcHello(t *testing.T, url string) *client {
	c := dial(t, url)
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "webrtc", "codec": "opus"}})
	if ev := c.Next(); ev.Type != "session" {
		t.Fatalf("%s", ev.Raw)
	}
	return c
}

func callOverWebRTC(t *testing.T, r *replica, speech [][]byte) {
	c := webrtcHello(t, r.URL)
	k := newCaller(t)
	pc := k.pc
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			c.Send(map[string]any{"type": "candidate", "candidate": cand.ToJSON()})
		}
	})
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	var mu sync.Mutex
	var audio [][]byte
	var at []time.Time
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for { // ends when the connection closes
			pkt, _, err := remote.ReadRTP()
			if err != nil {
				return
			}
			if len(pkt.Payload) == 0 {
				continue
			}
			mu.Lock()
			audio = append(audio, append([]byte(nil), pkt.Payload...))
			at = append(at, time.Now())
			mu.Unlock()
		}
	})
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(k.offer); err != nil {
		t.Fatal(err)
	}
	// Every candidate is trickled before the offer: the server holds them
	// until it has the offer (a client may well send them in that order).
	<-gathered
	k.sendOffer(c)

	events := make(chan msg, 1000)
	var loopback atomic.Int32
	go func() { // the socket's reader: negotiation here, the rest to events
		defer close(events)
		for {
			ev, err := c.Read(60 * time.Second)
			if err != nil {
				return
			}
			switch ev.Type {
			case "answer":
				var a struct{ SDP string }
				_ = json.Unmarshal([]byte(ev.Raw), &a)
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
					t.Errorf("answer: %v", err)
				}
			case "candidate":
				var m struct{ Candidate webrtc.ICECandidateInit }
				_ = json.Unmarshal([]byte(ev.Raw), &m)
				// The namespace has only lo: a loopback candidate is all the
				// server can offer, and it offers it by default to a client
				// on its own host.
				ip := candidateIP(m.Candidate.Candidate)
				if !ip.IsLoopback() {
					t.Errorf("the server offered %q", m.Candidate.Candidate)
					continue
				}
				if ip.Is4() { // the client is UDP4 only
					loopback.Add(1)
					if err := pc.AddICECandidate(m.Candidate); err != nil {
						t.Errorf("candidate: %v", err)
					}
				}
			default:
				events <- ev
			}
		}
	}()
	select {
	case <-connected:
	case <-time.After(15 * time.Second):
		t.Fatalf("the WebRTC connection did not come up (%d loopback candidates offered)", loopback.Load())
	}

	// Speak, at real time, over the connection.
	tick := time.NewTicker(20 * time.Millisecond)
	for _, p := range speech {
		<-tick.C
		if err := k.mic.WriteSample(pionmedia.Sample{Data: p, Duration: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()

	var final, done *msg
	for done == nil {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("socket closed")
			}
			switch {
			case ev.Type == "error":
				t.Fatalf("%s", ev.Raw)
			case ev.Type == "transcript" && ev.Final:
				final = &ev
			case ev.Type == "reply.done":
				done = &ev
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no reply")
		}
	}
	if final == nil || final.Text != "what time is it" || !strings.HasPrefix(done.Text, "It is ") {
		t.Fatalf("transcript %+v, reply %q", final, done.Text)
	}
	// reply.done follows the turn's last frame; the frames decode and are
	// paced.
	mu.Lock()
	defer mu.Unlock()
	dec, _ := opus.NewDecoder(opus.Rate)
	for i, p := range audio {
		if _, err := dec.Decode(p); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if len(audio) < 40 {
		t.Fatalf("%d frames of bot audio over WebRTC", len(audio))
	}
	if span, total := at[len(at)-1].Sub(at[0]), time.Duration(len(audio))*20*time.Millisecond; span < total/2 {
		t.Fatalf("%v of audio arrived within %v: not paced", total, span)
	}
}

// moveToWebSocket: the client offers, but sends no candidate and ignores
// the answer, so ICE never completes (as when the server has no candidate
// the browser can reach). It moves the call to the WebSocket; the call
// goes on there: the turn numbers go on, a spoken turn is heard and
// answered aloud. Bad moves get clear errors and the call survives them.
func moveToWebSocket(t *testing.T, r *replica, speech [][]byte) {
	c := webrtcHello(t, r.URL)
	k := newCaller(t)
	k.sendOffer(c)
	// A typed turn while WebRTC is not up: answered, and spoken into a
	// track that goes nowhere; that must not stop the call's audio.
	c.Send(map[string]any{"type": "text", "text": "what is the date"})
	if evs := c.Until("reply.done", 1); !strings.HasPrefix(evs[len(evs)-1].Text, "Today is ") {
		t.Fatalf("typed turn: %s", evs[len(evs)-1].Raw)
	}

	badMove := func(msg map[string]any, inMessage string) {
		t.Helper()
		c.Send(msg)
		for {
			ev := c.Next()
			if ev.Type == "error" {
				if ev.Code != "bad_request" || !strings.Contains(ev.Message, inMessage) {
					t.Fatalf("%v: want bad_request containing %q, got %s", msg, inMessage, ev.Raw)
				}
				return
			}
			if ev.Type == "audio" {
				t.Fatalf("%v moved the call: %s", msg, ev.Raw)
			}
		}
	}
	badMove(map[string]any{"type": "audio", "transport": "carrier-pigeon"}, `use "ws" or "webrtc"`)
	badMove(map[string]any{"type": "audio", "transport": "ws", "codec": "pcmu"}, `only opus`)
	badMove(map[string]any{"type": "audio", "transport": "webrtc"}, "already over webrtc")

	c.Send(map[string]any{"type": "audio", "transport": "ws", "codec": "opus"})
	for {
		ev := c.Next()
		if ev.Type == "error" {
			t.Fatalf("move: %s", ev.Raw)
		}
		if ev.Type == "audio" {
			if !strings.Contains(ev.Raw, `"transport":"ws"`) {
				t.Fatalf("move: %s", ev.Raw)
			}
			break
		}
	}
	badMove(map[string]any{"type": "audio", "transport": "ws"}, "already over ws")
	badMove(map[string]any{"type": "audio", "transport": "webrtc"}, "not back")
	badMove(map[string]any{"type": "offer", "sdp": k.offer.SDP}, "moved to the WebSocket")
	// A candidate trickled late, after the move, is dropped without a word.
	c.Send(map[string]any{"type": "candidate", "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"})

	h := hearCall(t, c, speech, false)
	var final, done *msg
	for i, ev := range h.events {
		switch ev.Type {
		case "transcript":
			if ev.Final {
				final = &h.events[i]
			}
		case "reply.done":
			done = &h.events[i]
		}
	}
	if final == nil || final.Text != "what time is it" || final.Turn != 2 {
		t.Fatalf("the spoken turn over the WebSocket: %+v", final)
	}
	if done == nil || done.Turn != 2 || !strings.HasPrefix(done.Text, "It is ") {
		t.Fatalf("its reply: %+v", done)
	}
	if len(h.audio) < 40 {
		t.Fatalf("%d frames of bot audio over the WebSocket after the move", len(h.audio))
	}
	dec, _ := opus.NewDecoder(opus.Rate)
	for i, p := range h.audio {
		if _, err := dec.Decode(p); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}
