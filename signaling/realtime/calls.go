package realtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/opus"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/rtc"
)

// The WebRTC flow (POST /v1/realtime/calls): the client's SDP offer in,
// the answer out; then the Realtime events on the client's data channel
// "oai-events", the caller's audio on its Opus track, the bot's on ours.

const (
	// maxCallBody bounds the request: an offer is a few KiB, a session
	// with many tools some more.
	maxCallBody = 256 << 10
	// eventsLabel is the data channel the events go on.
	eventsLabel = "oai-events"
	// gatherWait bounds the gathering of our candidates: the answer
	// carries them all (the client trickles nothing to us).
	gatherWait = 10 * time.Second
	// openWait is how long the data channel may take to open once the
	// answer is out (ICE, DTLS, SCTP); past it the call ends.
	openWait = 30 * time.Second
)

// callPeer is a WebRTC call's side of the peer connection: the data
// channel under the socket, the bot's track, and the caller's.
type callPeer struct {
	id      string // the call's id, in the answer's Location
	pc      *webrtc.PeerConnection
	data    *rtc.DataConn
	speaker *rtc.Speaker
	dec     media.Decoder // the caller's Opus, at the call's rate; on pion's track goroutine

	mu   sync.Mutex
	call *call.Call // nil until the session is up: the caller's audio waits for it
}

// cors lets a browser page of an allowed origin (-allowed-origins; by
// default the server's own host) POST its offer from another origin, as
// the agents SDK's WebRTC transport does from an app's page: the key is
// a bearer token, no cookie rides along. It answers a preflight (and
// reports true); on other requests it adds the headers the page needs to
// read the answer and its Location. A disallowed origin gets no CORS
// headers: its browser refuses the call, and the POST is refused anyway.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.ep.OriginAllowed(r) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions {
		h.Set("Access-Control-Expose-Headers", "Location")
		return false
	}
	h.Set("Access-Control-Allow-Methods", "POST")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// httpError answers a request in the OpenAI API's error shape.
func httpError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"type": typ, "code": code, "message": msg, "param": nilIfEmpty(param)}})
}

// refusal is the gateway's refusal (a bad key, an origin, a cap, the
// drain) in the OpenAI API's error shape, which the SDKs read: the code
// is the refusal's reason (docs/operations.md lists them).
func refusal(w http.ResponseWriter, status int, reason signaling.Reason, msg string) {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status >= 500:
		typ = "server_error"
	}
	httpError(w, status, typ, reason.String(), "", msg)
}

// ServeCalls answers POST /v1/realtime/calls: the request is admitted as
// a WebSocket of /v1/realtime is (the token, the origin, the caps, the
// drain), its offer answered (201, application/sdp, Location
// /v1/realtime/calls/{call_id}), and the call served on a goroutine of
// its own until the peer connection closes or fails.
func (s *Server) ServeCalls(w http.ResponseWriter, r *http.Request) {
	if s.cors(w, r) {
		return // a preflight, answered
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "",
			r.Method+" "+r.URL.Path+": POST an SDP offer (Content-Type application/sdp, or multipart/form-data with sdp and session)")
		return
	}
	switch {
	case s.rtc == nil:
		httpError(w, http.StatusServiceUnavailable, "server_error", "unsupported", "", "WebRTC could not start on this server (see its log); use the WebSocket, /v1/realtime")
		return
	case s.voice == nil:
		httpError(w, http.StatusBadRequest, "invalid_request_error", "unsupported", "",
			"this server has no speech recogniser or synthesiser: a WebRTC call carries audio; use the WebSocket, /v1/realtime, for text")
		return
	}
	adm := s.ep.Admit(w, r)
	if adm == nil {
		return // refused, and told why
	}
	offer, sess, status, code, msg := readOffer(r)
	if msg == "" {
		msg = checkOffer(offer)
		status, code = http.StatusBadRequest, "invalid_offer"
	}
	if msg != "" {
		adm.Release()
		httpError(w, status, "invalid_request_error", code, "", msg)
		return
	}
	initial := newConf("", "", time.Second, time.Second)
	if !isNull(sess) {
		if param, bad := initial.update(sess, time.Second, time.Second, s.cfg.Tools); bad != "" {
			adm.Release()
			httpError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", param, bad)
			return
		}
	}
	p, answer, err := s.answer(r, offer)
	if err != nil {
		adm.Release()
		s.log.Info("realtime call refused", "remote", r.RemoteAddr, "err", err)
		httpError(w, http.StatusBadRequest, "invalid_request_error", "invalid_offer", "", "the offer could not be answered: "+err.Error())
		return
	}
	sock := adm.Open(p.data)
	c := newConn(s, sock, beta(r), r.URL.Query().Get("model"))
	c.rtc, c.initial = p, sess
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/v1/realtime/calls/"+p.id)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
	s.ep.Serve(sock, c.serveCall)
}

// readOffer reads the offer's SDP and the optional session, or says what
// is wrong (status, code, message).
func readOffer(r *http.Request) (sdp string, session json.RawMessage, status int, code, msg string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallBody+1))
	if err != nil {
		return "", nil, http.StatusBadRequest, "invalid_request", "the body could not be read: " + err.Error()
	}
	if len(body) > maxCallBody {
		return "", nil, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is over %d bytes", maxCallBody)
	}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/sdp", "text/plain", "":
		return string(body), nil, 0, "", ""
	case "multipart/form-data":
		return readForm(body, params["boundary"])
	}
	return "", nil, http.StatusUnsupportedMediaType, "unsupported_content_type",
		fmt.Sprintf("Content-Type %q: send the offer as application/sdp, or multipart/form-data with the fields sdp and session", clip(ct, 60))
}

// readForm reads the GA form: the fields sdp (the offer) and session (a
// session object, JSON).
func readForm(body []byte, boundary string) (string, json.RawMessage, int, string, string) {
	bad := func(msg string) (string, json.RawMessage, int, string, string) {
		return "", nil, http.StatusBadRequest, "invalid_request", msg
	}
	if boundary == "" {
		return bad("multipart/form-data needs a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var sdp string
	var session json.RawMessage
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bad("the form could not be read: " + err.Error())
		}
		v, err := io.ReadAll(part) // within the body's cap
		if err != nil {
			return bad("the form could not be read: " + err.Error())
		}
		switch part.FormName() {
		case "sdp":
			sdp = string(v)
		case "session":
			if !json.Valid(v) {
				return bad("the session field is not JSON: a session object, as in session.update")
			}
			session = v
		}
	}
	if sdp == "" {
		return bad("the form has no sdp field: the offer's SDP")
	}
	return sdp, session, 0, "", ""
}

// checkOffer says what in the offer Parley cannot answer, or "".
func checkOffer(offer string) string {
	if !strings.HasPrefix(strings.TrimSpace(offer), "v=") {
		return "the body is not an SDP offer (it begins with \"v=0\"): send the offer of your RTCPeerConnection, offer.sdp"
	}
	d, err := (&webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}).Unmarshal()
	if err != nil {
		return "the SDP offer could not be parsed: " + err.Error()
	}
	var audio, data bool
	for _, m := range d.MediaDescriptions {
		switch m.MediaName.Media {
		case "audio":
			for _, a := range m.Attributes { // rtpmap:<payload type> <codec>/<rate>[/<channels>]
				if _, codec, ok := strings.Cut(a.Value, " "); ok && a.Key == "rtpmap" && strings.HasPrefix(strings.ToLower(codec), "opus/") {
					audio = true
				}
			}
		case "application":
			data = true
		}
	}
	switch {
	case !audio:
		return "the offer has no audio with Opus: add an audio transceiver (addTrack of the microphone, or addTransceiver(\"audio\"))"
	case !data:
		return "the offer has no data channel: create one named \"oai-events\" before the offer (the events go on it)"
	}
	return ""
}

// answer makes the call's peer and answers the offer, our candidates in
// the answer. Pion's goroutines and the track reader end when the peer
// connection closes (with the socket).
func (s *Server) answer(r *http.Request, offer string) (*callPeer, string, error) {
	pc, err := s.rtc.NewPeer(r.RemoteAddr)
	if err != nil {
		return nil, "", err
	}
	p, err := s.newCallPeer(r, pc)
	if err == nil {
		err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
	}
	var answer webrtc.SessionDescription
	if err == nil {
		answer, err = pc.CreateAnswer(nil)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(r.Context(), gatherWait)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		_ = pc.Close()
		return nil, "", errors.New("our ICE candidates were not gathered in time")
	}
	return p, pc.LocalDescription().SDP, nil
}

func (s *Server) newCallPeer(r *http.Request, pc *webrtc.PeerConnection) (*callPeer, error) {
	speaker, err := rtc.AddSpeaker(pc)
	if err != nil {
		return nil, err
	}
	dec, err := opus.Codec{}.NewDecoder(s.callRate())
	if err != nil {
		return nil, err
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	remote, _ := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	p := &callPeer{id: "rtc_" + hex.EncodeToString(id[:]), pc: pc, speaker: speaker, dec: dec}
	p.data = rtc.NewDataConn(remote)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != eventsLabel {
			_ = dc.Close() // Parley speaks on oai-events only
			return
		}
		p.data.Bind(dc)
	})
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if remote.Kind() == webrtc.RTPCodecTypeAudio {
			rtc.ReadOpus(remote, p.heard) // on pion's goroutine for this track; ends with it
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			_ = p.data.Close() // the socket ends, and with it the session's connection
		}
	})
	return p, nil
}

// callRate is the rate Opus decodes the caller's audio to: the
// recogniser's where Opus can (no resampler), else its own 48 kHz.
func (s *Server) callRate() int {
	if r := s.voice.ListenRate(); opus.NativeRate(r) {
		return r
	}
	return opus.Rate
}

// heard is one Opus packet of the caller's: to the call once it is up.
func (p *callPeer) heard(payload []byte) {
	p.mu.Lock()
	cl := p.call
	p.mu.Unlock()
	if cl == nil {
		return
	}
	pcm, err := p.dec.Decode(payload)
	if err != nil {
		droppedPackets.Inc()
		return
	}
	cl.Audio(pcm)
}

func (p *callPeer) setCall(cl *call.Call) {
	p.mu.Lock()
	p.call = cl
	p.mu.Unlock()
}

// serveCall is serve for a WebRTC call: once the data channel is open,
// the session is made (session.created on the channel) and the call
// started; the reader runs until the channel or the peer connection
// ends; then the peer connection is closed.
func (c *conn) serveCall() {
	defer func() { _ = c.rtc.pc.Close() }() // ends pion's goroutines and the track reader
	t := time.NewTimer(openWait)
	defer t.Stop()
	select {
	case <-c.rtc.data.Opened():
	case <-c.rtc.data.Done():
	case <-c.sock.Done():
	case <-t.C:
		c.sock.Log().Info("realtime call: the data channel did not open", "wait", openWait)
		c.sock.Close(signaling.ReasonHelloTimeout)
	}
	select {
	case <-c.rtc.data.Opened():
	default:
		c.sock.Close(signaling.ReasonClientGone)
		c.sock.Serve(c) // returns at once
		return
	}
	c.run(c.open())
}
