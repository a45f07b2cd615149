package parley

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/signaling/rtc"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var movedCalls = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "ws", Name: "calls_moved_total",
	Help: "Calls the client moved from WebRTC to the WebSocket (WebRTC did not connect).",
})

// rtcPeer is one call's WebRTC side: the server's peer connection, its
// audio track out, and the reader of the caller's track.
type rtcPeer struct {
	pc    *webrtc.PeerConnection
	track *rtc.Speaker
	c     *conn
	dec   media.Decoder // the caller's audio; used on pion's track goroutine
	call  *call.Call    // set before the offer can arrive
	heard atomic.Bool   // a packet of the caller's audio has arrived

	// Candidates that came before the offer (a client may trickle them as
	// soon as it gathers them): added once the offer is set. Reader-owned.
	early []webrtc.ICECandidateInit

	// Our candidates wait until the answer is queued: a peer cannot add a
	// candidate before it has the description it belongs to.
	mu       sync.Mutex
	answered bool
	held     []webrtc.ICECandidateInit
	watch    *time.Timer // checks that audio arrives once connected
}

const (
	// maxEarlyCandidates bounds the candidates held before the offer.
	maxEarlyCandidates = 32
	// rtcAudioWait is how long a connected peer may go without the
	// caller's audio before the client is told WebRTC does not work (a
	// browser sends a packet every 20 ms, silence included).
	rtcAudioWait = 5 * time.Second
)

// startRTC creates the peer for a webrtc call. Pion's goroutines and the
// track reader end when the peer connection closes (with the socket, or
// when the call moves to the WebSocket).
func (c *conn) startRTC(dec media.Decoder) (*rtcPeer, error) {
	pc, err := c.srv.rtc.NewPeer(c.sock.RemoteAddr().String())
	if err != nil {
		return nil, err
	}
	track, err := rtc.AddSpeaker(pc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	p := &rtcPeer{pc: pc, track: track, c: c, dec: dec}
	pc.OnICECandidate(p.localCandidate)
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if remote.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		p.readAudio(remote) // on pion's goroutine for this track; ends with it
	})
	pc.OnConnectionStateChange(p.stateChanged)
	return p, nil
}

// localCandidate sends one of our candidates, or holds it until the answer
// is out.
func (p *rtcPeer) localCandidate(cand *webrtc.ICECandidate) {
	if cand == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.answered {
		p.held = append(p.held, cand.ToJSON())
		return
	}
	p.c.sendJSON(candidateMsg{Type: "candidate", Candidate: cand.ToJSON()})
}

// stateChanged tells the client when WebRTC does not carry the call: the
// connection failed, or it is up and no audio comes. The client may then
// move the call to the WebSocket (see conn.moveAudio).
func (p *rtcPeer) stateChanged(s webrtc.PeerConnectionState) {
	c := p.c
	c.sock.Log().Info("webrtc", "state", s.String())
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if p.watch == nil {
			// Runs once, rtcAudioWait after the connection came up; stopped
			// if the peer closes first.
			p.watch = time.AfterFunc(rtcAudioWait, func() {
				if !p.heard.Load() && p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
					c.notify(codeWebRTCFailed, fmt.Sprintf("the WebRTC connection is up, but none of your audio arrived over it in %v; "+
						`send {"type":"audio","transport":"ws"} to go on over the WebSocket`, rtcAudioWait))
				}
			})
		}
	case webrtc.PeerConnectionStateFailed:
		c.notify(codeWebRTCFailed, `the WebRTC connection failed; send {"type":"audio","transport":"ws"} to go on over the WebSocket, or call again`)
	case webrtc.PeerConnectionStateClosed:
		if p.watch != nil {
			p.watch.Stop()
		}
	}
}

// readAudio decodes the caller's RTP packets into the call.
func (p *rtcPeer) readAudio(remote *webrtc.TrackRemote) {
	rtc.ReadOpus(remote, func(payload []byte) {
		p.heard.Store(true)
		pcm, err := p.dec.Decode(payload)
		if err != nil {
			droppedAudio.WithLabelValues("bad_packet").Inc()
			return
		}
		p.call.Audio(pcm)
	})
}

// sendAudio writes one packet to the caller's track. A failed write (the
// connection is not up, or has just been closed by a move) loses that
// packet only: the call goes on, and may move to the WebSocket.
func (p *rtcPeer) sendAudio(pkt []byte) { p.track.Send(pkt) }

type candidateMsg struct {
	Type      string                  `json:"type"`
	Candidate webrtc.ICECandidateInit `json:"candidate"`
}

type answerMsg struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// sdpOf accepts an SDP as the browser gives it: a string, or an
// RTCSessionDescription object {type, sdp}.
func sdpOf(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, nil
	}
	var d struct{ Type, SDP string }
	if json.Unmarshal(raw, &d) == nil && d.SDP != "" {
		return d.SDP, nil
	}
	return "", errors.New(`"sdp" must be the offer's SDP, as a string or {"type":"offer","sdp":…}`)
}

// offer answers the caller's offer.
func (c *conn) offer(m *inMsg) {
	p := c.rtc
	switch {
	case p == nil && c.moved:
		c.sendError(codeBadRequest, "the call has moved to the WebSocket; its WebRTC peer is closed")
		return
	case p == nil:
		c.sendError(codeBadRequest, `an offer needs a call: say hello with "audio": {"transport": "webrtc"}`)
		return
	}
	sdp, err := sdpOf(m.SDP)
	if err != nil {
		c.sendError(codeBadRequest, err.Error())
		return
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.sendError(codeBadRequest, "the offer was refused: "+err.Error())
		return
	}
	for _, init := range p.early {
		if err := p.pc.AddICECandidate(init); err != nil {
			c.sendError(codeBadRequest, "the candidate was refused: "+err.Error())
		}
	}
	p.early = nil
	answer, err := p.pc.CreateAnswer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(answer)
	}
	if err != nil {
		c.sendError(codeBadRequest, "no answer to that offer: "+err.Error())
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c.sendJSON(answerMsg{Type: "answer", SDP: answer.SDP})
	for _, cand := range p.held {
		c.sendJSON(candidateMsg{Type: "candidate", Candidate: cand})
	}
	p.answered, p.held = true, nil
}

// candidate adds one of the caller's ICE candidates.
func (c *conn) candidate(m *inMsg) {
	p := c.rtc
	switch {
	case p == nil && c.moved:
		return // trickled before the client moved the call: no peer needs it now
	case p == nil:
		c.sendError(codeBadRequest, `a candidate needs a call: say hello with "audio": {"transport": "webrtc"}`)
		return
	}
	var init webrtc.ICECandidateInit
	if err := json.Unmarshal(m.Candidate, &init); err != nil {
		var s string
		if json.Unmarshal(m.Candidate, &s) != nil {
			c.sendError(codeBadRequest, `"candidate" must be an RTCIceCandidateInit object or its candidate string`)
			return
		}
		init.Candidate = s
	}
	if strings.TrimSpace(init.Candidate) == "" {
		return // the end-of-candidates marker
	}
	if p.pc.RemoteDescription() == nil {
		if len(p.early) >= maxEarlyCandidates {
			c.sendError(codeBadRequest, fmt.Sprintf("more than %d candidates before the offer", maxEarlyCandidates))
			return
		}
		p.early = append(p.early, init)
		return
	}
	if err := p.pc.AddICECandidate(init); err != nil {
		c.sendError(codeBadRequest, "the candidate was refused: "+err.Error())
	}
}
