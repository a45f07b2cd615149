package twilio_test

import (
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/twilio"
)

// parsedTwiML is the webhook's answer, read back with encoding/xml.
type parsedTwiML struct {
	XMLName xml.Name  `xml:"Response"`
	Say     []string  `xml:"Say"`
	Hangup  *struct{} `xml:"Hangup"`
	Connect []struct {
		Stream []struct {
			URL    string `xml:"url,attr"`
			Params []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"Parameter"`
		} `xml:"Stream"`
	} `xml:"Connect"`
}

func (p parsedTwiML) params() map[string]string {
	out := map[string]string{}
	for _, pr := range p.Connect[0].Stream[0].Params {
		out[pr.Name] = pr.Value
	}
	return out
}

func newWebhookServer(t *testing.T, cfg twilio.Config, gw signaling.Config, voice *call.Voice) *twilio.Server {
	t.Helper()
	s, err := twilio.NewServer(cfg, signaling.NewGateway(gw, slog.New(slog.DiscardHandler)), nil, voice, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// callForm is a voice webhook's form as Twilio posts it.
func callForm() url.Values {
	return url.Values{"CallSid": {"CA0123456789abcdef0123456789abcdef"}, "AccountSid": {"AC42"},
		"From": {`+1 555 <"0100">&`}, "To": {"+18005550199"}, "CallStatus": {"ringing"}, "Direction": {"inbound"}}
}

func post(s *twilio.Server, target string, form url.Values, h map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeVoice(w, r)
	return w
}

func readTwiML(t *testing.T, w *httptest.ResponseRecorder) parsedTwiML {
	t.Helper()
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/xml") {
		t.Fatalf("%d %s: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var doc parsedTwiML
	if err := xml.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, w.Body)
	}
	return doc
}

// The webhook answers TwiML that connects the call to the Media Stream at
// the public wss:// URL, with no query string, and the call's CallSid,
// From and To as <Parameter>s, escaped; a greeting when configured. The
// URL is the configured one, else the request's Host, with https unless a
// trusted proxy says the request came as http.
func TestWebhookTwiML(t *testing.T) {
	proxies, _ := signaling.ParseTrustedProxies([]string{"10.0.0.0/8"})
	tests := []struct {
		name     string
		cfg      twilio.Config
		remote   string
		proto    string // X-Forwarded-Proto
		want     string
		greeting string
	}{
		{"the defaults: the Host, wss", twilio.Config{}, "203.0.113.9:4000", "", "wss://voice.example.com/twilio/media", ""},
		{"a proxy not trusted is not believed", twilio.Config{}, "203.0.113.9:4000", "http", "wss://voice.example.com/twilio/media", ""},
		{"a trusted proxy's http", twilio.Config{}, "10.0.0.2:4000", "http", "ws://voice.example.com/twilio/media", ""},
		{"a trusted proxy's https", twilio.Config{}, "10.0.0.2:4000", "https", "wss://voice.example.com/twilio/media", ""},
		{"the public URL wins", twilio.Config{PublicURL: "https://phone.example.net:8443"}, "10.0.0.2:4000", "http", "wss://phone.example.net:8443/twilio/media", ""},
		{"a greeting", twilio.Config{Greeting: `Hi <there> & "welcome"`}, "203.0.113.9:4000", "", "wss://voice.example.com/twilio/media", `Hi <there> & "welcome"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A trusted proxy, and each case's settings: what they change
			// is the test (the first case is the defaults').
			s := newWebhookServer(t, tc.cfg, signaling.Config{TrustedProxies: proxies}, &call.Voice{})
			r := httptest.NewRequest("POST", "http://voice.example.com/twilio/voice", strings.NewReader(callForm().Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.RemoteAddr = tc.remote
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			w := httptest.NewRecorder()
			s.ServeVoice(w, r)
			doc := readTwiML(t, w)
			if len(doc.Connect) != 1 || len(doc.Connect[0].Stream) != 1 {
				t.Fatalf("no one <Connect><Stream>: %s", w.Body)
			}
			if got := doc.Connect[0].Stream[0].URL; got != tc.want || strings.Contains(got, "?") {
				t.Fatalf("stream URL %q, want %q", got, tc.want)
			}
			p, f := doc.params(), callForm()
			if len(p) != 3 || p["CallSid"] != f.Get("CallSid") || p["From"] != f.Get("From") || p["To"] != f.Get("To") {
				t.Fatalf("parameters %v", p)
			}
			if tc.greeting == "" && len(doc.Say) != 0 || tc.greeting != "" && (len(doc.Say) != 1 || doc.Say[0] != tc.greeting) {
				t.Fatalf("say %q, want %q", doc.Say, tc.greeting)
			}
			if doc.Hangup != nil {
				t.Fatal("a call with a voice stack is hung up")
			}
			if !strings.Contains(w.Body.String(), "&lt;&#34;0100&#34;&gt;&amp;") {
				t.Fatalf("From is not escaped as XML: %s", w.Body)
			}
		})
	}
	t.Run("no voice stack", func(t *testing.T) {
		s := newWebhookServer(t, twilio.Config{Greeting: "Hello."}, signaling.Config{}, nil)
		doc := readTwiML(t, post(s, "http://voice.example.com/twilio/voice", callForm(), nil))
		if len(doc.Connect) != 0 || doc.Hangup == nil || len(doc.Say) != 1 || !strings.Contains(doc.Say[0], "cannot take calls") {
			t.Fatalf("%+v", doc)
		}
	})
}

// Not a POST, not a form, a form that cannot be read: a 4xx that says
// what Twilio's webhook should be.
func TestWebhookBadRequests(t *testing.T) {
	s := newWebhookServer(t, twilio.Config{}, signaling.Config{}, &call.Voice{})
	tests := []struct {
		name, method, ctype, body string
		status                    int
		says                      string
	}{
		{"a GET", "GET", "", "", http.StatusMethodNotAllowed, "takes a POST"},
		{"JSON", "POST", "application/json", `{"CallSid":"CA1"}`, http.StatusUnsupportedMediaType, "application/x-www-form-urlencoded"},
		{"a bad form", "POST", "application/x-www-form-urlencoded", "CallSid=%zz", http.StatusBadRequest, "could not be read"},
		{"too big", "POST", "application/x-www-form-urlencoded", "From=" + strings.Repeat("1", 70<<10), http.StatusBadRequest, "could not be read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/twilio/voice", strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			s.ServeVoice(w, r)
			body, _ := io.ReadAll(w.Body)
			if w.Code != tc.status || !strings.Contains(string(body), tc.says) {
				t.Fatalf("%d %q; want %d saying %q", w.Code, body, tc.status, tc.says)
			}
		})
	}
}

// With an auth token, the webhook checks X-Twilio-Signature over the
// public URL it was called at (not the internal one) and the form: a good
// signature is answered, a missing or bad one, or one over a changed
// parameter, is refused 403.
func TestWebhookSignature(t *testing.T) {
	const token = "the-auth-token"
	const public = "https://voice.example.com"
	// A token and a public URL: their signatures are the test.
	s := newWebhookServer(t, twilio.Config{AuthToken: token, PublicURL: public}, signaling.Config{}, &call.Voice{})
	target := "http://127.0.0.1:8080/twilio/voice?tenant=a%20b"
	good := twilio.Signature(token, public+"/twilio/voice?tenant=a%20b", callForm())
	changed := callForm()
	changed.Set("From", "+15550000000")
	tests := []struct {
		name   string
		form   url.Values
		sig    string
		status int
	}{
		{"good", callForm(), good, 200},
		{"missing", callForm(), "", http.StatusForbidden},
		{"bad", callForm(), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", http.StatusForbidden},
		{"a changed parameter", changed, good, http.StatusForbidden},
		{"over the internal URL", callForm(), twilio.Signature(token, target, callForm()), http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.sig != "" {
				h[twilio.SignatureHeader] = tc.sig
			}
			w := post(s, target, tc.form, h)
			if w.Code != tc.status {
				t.Fatalf("%d %s; want %d", w.Code, w.Body, tc.status)
			}
			if tc.status == 200 {
				doc := readTwiML(t, w)
				if got := doc.Connect[0].Stream[0].URL; got != "wss://voice.example.com/twilio/media" {
					t.Fatalf("stream URL %q", got)
				}
			} else if !strings.Contains(w.Body.String(), twilio.SignatureHeader) {
				t.Fatalf("the refusal does not say why: %s", w.Body)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		cfg twilio.Config
		ok  bool
	}{
		{twilio.Config{}, true},
		{twilio.Config{PublicURL: "https://voice.example.com/"}, true},
		{twilio.Config{PublicURL: "http://10.0.0.1:8080", DTMF: "event"}, true},
		{twilio.Config{PublicURL: "wss://voice.example.com"}, false},
		{twilio.Config{PublicURL: "https://voice.example.com/parley"}, false},
		{twilio.Config{PublicURL: "voice.example.com"}, false},
		{twilio.Config{DTMF: "ignore"}, false},
	} {
		if err := tc.cfg.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.cfg, err)
		}
	}
}
