//go:build !nospeech

package signaling_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/signaling"
)

// loopbackOnly keeps every peer in these tests on 127.0.0.1: the lo
// interface, loopback candidates, no mDNS, UDP over IPv4.
var loopbackOnly = signaling.WebRTCConfig{Interfaces: []string{"lo"}, Loopback: true}

func clientAPI(t *testing.T) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var s webrtc.SettingEngine
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetIncludeLoopbackCandidate(true)
	s.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s))
}

func TestVoiceCallOverWebRTC(t *testing.T) {
	asr, v := offline(t)
	r := startReplica(t, newRedis(t), local.New(local.Config{}), replicaOpts{asr: asr, tts: v, ws: signaling.Config{WebRTC: loopbackOnly}})
	c := dial(t, r.URL)
	c.send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "webrtc", "codec": "opus"}})
	if ev := c.next(); ev.Type != "session" {
		t.Fatalf("%s", ev.raw)
	}

	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	mic, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "caller")
	if _, err := pc.AddTrack(mic); err != nil {
		t.Fatal(err)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			c.send(map[string]any{"type": "candidate", "candidate": cand.ToJSON()})
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
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	// Every candidate is trickled before the offer: the server holds them
	// until it has the offer (a client may well send them in that order).
	<-gathered
	c.send(map[string]any{"type": "offer", "sdp": map[string]string{"type": "offer", "sdp": offer.SDP}})

	events := make(chan msg, 1000)
	go func() { // the socket's reader: negotiation here, the rest to events
		for {
			ev, err := c.read(60 * time.Second)
			if err != nil {
				close(events)
				return
			}
			switch ev.Type {
			case "answer":
				var a struct{ SDP string }
				_ = json.Unmarshal([]byte(ev.raw), &a)
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
					t.Errorf("answer: %v", err)
				}
			case "candidate":
				var m struct{ Candidate webrtc.ICECandidateInit }
				_ = json.Unmarshal([]byte(ev.raw), &m)
				if !strings.Contains(m.Candidate.Candidate, "127.0.0.1") {
					t.Errorf("the server offered a non-loopback candidate: %s", m.Candidate.Candidate)
					continue
				}
				if err := pc.AddICECandidate(m.Candidate); err != nil {
					t.Errorf("candidate: %v", err)
				}
			default:
				events <- ev
			}
		}
	}()
	select {
	case <-connected:
	case <-time.After(15 * time.Second):
		t.Fatal("the WebRTC connection did not come up")
	}

	// Speak, at real time, over the connection.
	tick := time.NewTicker(20 * time.Millisecond)
	for _, p := range opusSpeech(t, v, "what time is it", 500*time.Millisecond, 1500*time.Millisecond) {
		<-tick.C
		if err := mic.WriteSample(pionmedia.Sample{Data: p, Duration: 20 * time.Millisecond}); err != nil {
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
				t.Fatalf("%s", ev.raw)
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
