package rtc

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Config configures the WebRTC transport. The zero value suits a laptop,
// online or not: host candidates on every interface, no STUN or TURN, any
// UDP port, and loopback candidates for a browser on this host.
type Config struct {
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
	// LoopbackAuto offers them to a client whose request comes from a
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

// OpusCapability is the one codec of the APIs: Opus, as browsers offer it.
var OpusCapability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// APIs are a server's pion APIs. A SettingEngine belongs to its API, so
// offering loopback candidates to some clients only takes two of them.
type APIs struct {
	Config Config
	remote *webrtc.API // for a client elsewhere
	local  *webrtc.API // for a client on this host
}

// NewAPIs builds the APIs of cfg.
func NewAPIs(cfg Config) (*APIs, error) {
	with, err := newAPI(cfg, cfg.Loopback != LoopbackOff)
	if err != nil {
		return nil, err
	}
	apis := &APIs{Config: cfg, remote: with, local: with}
	if cfg.Loopback == LoopbackAuto {
		if apis.remote, err = newAPI(cfg, false); err != nil {
			return nil, err
		}
	}
	return apis, nil
}

// ForClient is the API for a client whose connection comes from addr.
func (a *APIs) ForClient(addr net.Addr) *webrtc.API { return a.ForAddr(addr.String()) }

// ForAddr is ForClient for an address as a string (an HTTP request's
// RemoteAddr).
func (a *APIs) ForAddr(addr string) *webrtc.API {
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().IsLoopback() {
		return a.local
	}
	return a.remote
}

// WithLoopback reports whether api offers loopback candidates.
func (a *APIs) WithLoopback(api *webrtc.API) bool {
	return api == a.local && a.Config.Loopback != LoopbackOff
}

// NewPeer is a peer connection from the API for a client at addr, with
// the configured ICE servers.
func (a *APIs) NewPeer(addr string) (*webrtc.PeerConnection, error) {
	return a.ForAddr(addr).NewPeerConnection(webrtc.Configuration{ICEServers: a.Config.ICEServers})
}

// newAPI builds a pion API: Opus only, and the network settings.
func newAPI(cfg Config, loopback bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: OpusCapability,
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
