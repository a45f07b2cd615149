package twilio

import (
	"encoding/xml"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"
)

const (
	// maxForm bounds a webhook's body: Twilio's are about 1 KB.
	maxForm = 64 << 10
	// maxParam bounds each value passed on to the stream as a <Parameter>.
	maxParam = 256
	// MediaPath and VoicePath are where the server is mounted.
	MediaPath = "/twilio/media"
	VoicePath = "/twilio/voice"
)

// noVoice is what a caller hears from a server without a recogniser or a
// synthesiser.
const noVoice = "Sorry, this number cannot take calls right now. Goodbye."

// The TwiML the webhook answers (Twilio's <Response> document).
type twiml struct {
	XMLName xml.Name      `xml:"Response"`
	Say     *twimlSay     `xml:"Say,omitempty"`
	Connect *twimlConnect `xml:"Connect,omitempty"`
	Hangup  *struct{}     `xml:"Hangup,omitempty"`
}

type twimlSay struct {
	Text string `xml:",chardata"`
}

type twimlConnect struct {
	Stream twimlStream `xml:"Stream"`
}

type twimlStream struct {
	URL    string       `xml:"url,attr"`
	Params []twimlParam `xml:"Parameter"`
}

type twimlParam struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// streamParams are the webhook's form fields passed on to the stream, as
// <Parameter>s of the same names: they come back in the start message's
// customParameters.
var streamParams = []string{"CallSid", "From", "To"}

// ServeVoice is Twilio's voice webhook: a POST of the call's form
// (CallSid, From, To, …), answered with TwiML that connects the call to
// this server's Media Stream. With an auth token, the request must carry
// Twilio's signature over the public URL and the form.
func (s *Server) ServeVoice(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuseWebhook(w, r, http.StatusMethodNotAllowed, "bad_request", "the voice webhook takes a POST (set the number's voice webhook to HTTP POST)")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		s.refuseWebhook(w, r, http.StatusUnsupportedMediaType, "bad_request", "the voice webhook takes Twilio's form (application/x-www-form-urlencoded)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.refuseWebhook(w, r, http.StatusBadRequest, "bad_request", "the form could not be read: "+err.Error())
		return
	}
	scheme, host := s.base(r)
	if s.cfg.AuthToken != "" {
		if err := s.checkSignature(r, scheme+"://"+host+requestURI(r), r.PostForm); err != nil {
			s.refuseWebhook(w, r, http.StatusForbidden, "bad_signature", err.Error())
			return
		}
	}
	doc := twiml{}
	if s.cfg.Greeting != "" {
		doc.Say = &twimlSay{Text: s.cfg.Greeting}
	}
	result := "answered"
	if s.voice == nil {
		doc.Say, doc.Hangup, result = &twimlSay{Text: noVoice}, &struct{}{}, "no_voice"
	} else {
		doc.Connect = &twimlConnect{Stream: twimlStream{URL: wsScheme(scheme) + "://" + host + MediaPath, Params: paramsOf(r.PostForm)}}
	}
	b, err := xml.Marshal(doc)
	if err != nil { // strings only: cannot happen
		s.refuseWebhook(w, r, http.StatusInternalServerError, "bad_request", err.Error())
		return
	}
	webhooks.WithLabelValues(result).Inc()
	s.log.Info("phone call answered", "call_sid", clip(r.PostForm.Get("CallSid")), "result", result)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// paramsOf are the stream's <Parameter>s: the form's fields that are
// passed on, those that are set, each cut to maxParam bytes.
func paramsOf(form url.Values) []twimlParam {
	var out []twimlParam
	for _, name := range streamParams {
		if v := form.Get(name); v != "" {
			out = append(out, twimlParam{Name: name, Value: clip(v)})
		}
	}
	return out
}

// clip cuts s to maxParam bytes, at a character's start.
func clip(s string) string {
	if len(s) <= maxParam {
		return s
	}
	n := maxParam
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// refuseWebhook answers a webhook that is not served, and counts and logs
// it (with the peer's address, never the form: it names the caller), at
// info level, as the gateway logs its refusals: anyone on the internet
// can post here, and must not be able to flood the log with warnings.
func (s *Server) refuseWebhook(w http.ResponseWriter, r *http.Request, status int, result, msg string) {
	webhooks.WithLabelValues(result).Inc()
	s.log.Info("twilio webhook refused", "remote", r.RemoteAddr, "status", status, "why", msg)
	http.Error(w, msg, status)
}
