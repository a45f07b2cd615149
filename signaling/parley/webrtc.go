package parley

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// WebRTCConfig configures the WebRTC transport. The zero value suits a
// laptop, online or not: host candidates on every interface, no STUN or
// TURN, any UDP port, and loopback candidates for a browser on this host.
type WebRTCConfig struct {
	ICEServers []webrtc.ICEServer // STUN/TURN servers given to the server's peer
	PortMin    uint16             // UDP port range for media; 0: any
	PortMax    uint16
	PublicIPs  []string // the host's public addresses, when it is behind a 1:1 NAT
	Interfaces []string // network interfaces to gather candidates on; empty: all (loopback is Loopback's)
	Loopback   Loopback // when to offer loopback candidates; default LoopbackAuto
}

// Loopback says which clients are offered loopback candidates (127.0.0.1,
// ::1), besides those of the other interfaces.
type Loopback uint8

const (
	// LoopbackAuto offers them to a client whose socket comes from a
	// loopback address: a browser on this host. Loopback is the one path
	// that always joins two programs on one host, with the network down, in
	// a container or a sandbox that has only lo; without it such a call
	// has no candidate pair. A client elsewhere is not offered them (they
	// name its own host, not ours). Behind a proxy on this host every
	// client looks local: it is offered loopback candidates as well as the
	// others, and they fail harmlessly.
	LoopbackAuto Loopback = iota
	LoopbackOn            // to every client
	LoopbackOff           // to none
)

// ParseLoopback reads a Loopback setting: auto (or empty), on, off; true
// and false are on and off.
func ParseLoopback(s string) (Loopback, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return LoopbackAuto, nil
	case "on", "true":
		return LoopbackOn, nil
	case "off", "false":
		return LoopbackOff, nil
	}
	return LoopbackAuto, fmt.Errorf("%q: use auto, on or off", s)
}

func (l Loopback) String() string {
	switch l {
	case LoopbackOn:
		return "on"
	case LoopbackOff:
		return "off"
	}
	return "auto"
}

// rtcAPIs are a server's pion APIs. A SettingEngine belongs to its API, so
// offering loopback candidates to some clients only takes two of them.
type rtcAPIs struct {
	remote *webrtc.API // for a client elsewhere
	local  *webrtc.API // for a client on this host
}

func newRTCAPIs(cfg WebRTCConfig) (*rtcAPIs, error) {
	with, err := newWebRTCAPI(cfg, cfg.Loopback != LoopbackOff)
	if err != nil {
		return nil, err
	}
	apis := &rtcAPIs{remote: with, local: with}
	if cfg.Loopback == LoopbackAuto {
		if apis.remote, err = newWebRTCAPI(cfg, false); err != nil {
			return nil, err
		}
	}
	return apis, nil
}

// forClient is the API for a client whose socket comes from addr.
func (a *rtcAPIs) forClient(addr net.Addr) *webrtc.API {
	if ap, err := netip.ParseAddrPort(addr.String()); err == nil && ap.Addr().Unmap().IsLoopback() {
		return a.local
	}
	return a.remote
}

// newWebRTCAPI builds a pion API: Opus only, and the network settings.
func newWebRTCAPI(cfg WebRTCConfig, loopback bool) (*webrtc.API, error) {
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
	s.SetIncludeLoopbackCandidate(loopback)
	if len(cfg.Interfaces) > 0 {
		allowed := map[string]bool{}
		for _, i := range cfg.Interfaces {
			allowed[i] = true
		}
		// Pion asks about a loopback interface only when loopback
		// candidates are on; Loopback decides them, not this list.
		s.SetInterfaceFilter(func(name string) bool { return allowed[name] || isLoopback(name) })
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

func isLoopback(name string) bool {
	i, err := net.InterfaceByName(name)
	return err == nil && i.Flags&net.FlagLoopback != 0
}

var movedCalls = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "ws", Name: "calls_moved_total",
	Help: "Calls the client moved from WebRTC to the WebSocket (WebRTC did not connect).",
})

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
	api := c.srv.rtc.forClient(c.sock.RemoteAddr())
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: c.srv.cfg.WebRTC.ICEServers})
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
		p.heard.Store(true)
		pcm, err := p.dec.Decode(pkt.Payload)
		if err != nil {
			droppedAudio.WithLabelValues("bad_packet").Inc()
			continue
		}
		p.call.Audio(pcm)
	}
}

// sendAudio writes one packet to the caller's track. A failed write (the
// connection is not up, or has just been closed by a move) loses that
// packet only: the call goes on, and may move to the WebSocket.
func (p *rtcPeer) sendAudio(pkt []byte) {
	_ = p.track.WriteSample(pionmedia.Sample{Data: pkt, Duration: media.FrameDuration})
}

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
