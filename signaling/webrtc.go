package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
)

// WebRTCConfig configures the WebRTC transport. The zero value suits a
// laptop: host candidates on every interface, no STUN or TURN, any UDP
// port, no loopback candidates.
type WebRTCConfig struct {
	ICEServers []webrtc.ICEServer // STUN/TURN servers given to the server's peer
	PortMin    uint16             // UDP port range for media; 0: any
	PortMax    uint16
	PublicIPs  []string // the host's public addresses, when it is behind a 1:1 NAT
	Interfaces []string // network interfaces to gather candidates on; empty: all
	Loopback   bool     // also offer 127.0.0.1 candidates (a browser on the same host)
}

// webrtcAPI builds the pion API: Opus only, and the network settings.
func newWebRTCAPI(cfg WebRTCConfig) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: opusCapability,
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	var s webrtc.SettingEngine
	// No multicast DNS: candidates carry addresses, and nothing is sent to
	// the mDNS group.
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetIncludeLoopbackCandidate(cfg.Loopback)
	if len(cfg.Interfaces) > 0 {
		allowed := map[string]bool{}
		for _, i := range cfg.Interfaces {
			allowed[i] = true
		}
		s.SetInterfaceFilter(func(name string) bool { return allowed[name] })
	}
	if cfg.PortMin != 0 || cfg.PortMax != 0 {
		if err := s.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("webrtc: UDP port range: %w", err)
		}
	}
	if len(cfg.PublicIPs) > 0 {
		s.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s)), nil
}

var opusCapability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// rtcPeer is one call's WebRTC side: the server's peer connection, its
// audio track out, and the reader of the caller's track.
type rtcPeer struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
	c     *conn
	dec   media.Decoder // the caller's audio; used on pion's track goroutine
	call  *call.Call    // set before the offer can arrive

	// Candidates that came before the offer (a client may trickle them as
	// soon as it gathers them): added once the offer is set. Reader-owned.
	early []webrtc.ICECandidateInit

	// Our candidates wait until the answer is queued: a peer cannot add a
	// candidate before it has the description it belongs to.
	mu       sync.Mutex
	answered bool
	held     []webrtc.ICECandidateInit
}

// maxEarlyCandidates bounds the candidates held before the offer.
const maxEarlyCandidates = 32

// startRTC creates the peer for a webrtc call. Pion's goroutines and the
// track reader end when the peer connection closes (with the socket).
func (c *conn) startRTC(dec media.Decoder) (*rtcPeer, error) {
	pc, err := c.srv.rtc.NewPeerConnection(webrtc.Configuration{ICEServers: c.srv.cfg.WebRTC.ICEServers})
	if err != nil {
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticSample(opusCapability, "audio", "parley")
	if err != nil {
		pc.Close()
		return nil, err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		pc.Close()
		return nil, err
	}
	p := &rtcPeer{pc: pc, track: track, c: c, dec: dec}
	go func() { // drains RTCP; ends when the sender closes
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.answered {
			p.held = append(p.held, cand.ToJSON())
			return
		}
		c.sendJSON(candidateMsg{Type: "candidate", Candidate: cand.ToJSON()})
	})
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if remote.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		p.readAudio(remote) // on pion's goroutine for this track; ends with it
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.log.Info("webrtc", "state", s.String())
		if s == webrtc.PeerConnectionStateFailed {
			c.sendError(codeInternal, "the WebRTC connection failed; reconnect the call")
		}
	})
	return p, nil
}

// readAudio decodes the caller's RTP packets into the call. Chrome sends
// empty padding packets; they are skipped.
func (p *rtcPeer) readAudio(remote *webrtc.TrackRemote) {
	for {
		pkt, _, err := remote.ReadRTP()
		if err != nil {
			return
		}
		if len(pkt.Payload) == 0 {
			continue
		}
		pcm, err := p.dec.Decode(pkt.Payload)
		if err != nil {
			droppedAudio.WithLabelValues("bad_packet").Inc()
			continue
		}
		p.call.Audio(pcm)
	}
}

// SendAudio implements call.Output for a WebRTC call.
func (p *rtcPeer) SendAudio(pkt []byte) error {
	return p.track.WriteSample(pionmedia.Sample{Data: pkt, Duration: media.FrameDuration})
}

// SendEvent implements call.Output.
func (p *rtcPeer) SendEvent(ev event.Event) { p.c.SendEvent(ev) }

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
	if p == nil {
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
	if p == nil {
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
