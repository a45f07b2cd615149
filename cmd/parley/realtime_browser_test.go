//go:build !nospeech

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/redistest"
)

// realtimePage is a browser app of OpenAI's Realtime WebRTC guide, its
// minimal code as it stands there: a client secret from its own backend
// (/token), a peer connection with the microphone and the oai-events
// data channel, the offer POSTed to /v1/realtime/calls with the key, the
// answer set. It keeps the events it reads, and plays the remote audio.
const realtimePage = `<!doctype html>
<html><body><div id="state">new</div><pre id="log"></pre>
<script>
window.events = [];
window.call = {};
const log = (s) => { document.getElementById("log").textContent += s + "\n"; };
async function init() {
  const tokenResponse = await fetch("/token");
  const data = await tokenResponse.json();
  const EPHEMERAL_KEY = data.value;
  window.call.key = EPHEMERAL_KEY;

  const pc = new RTCPeerConnection();
  window.call.pc = pc;
  const audioElement = document.createElement("audio");
  audioElement.autoplay = true;
  document.body.appendChild(audioElement);
  pc.ontrack = (e) => { audioElement.srcObject = e.streams[0]; };

  const ms = await navigator.mediaDevices.getUserMedia({ audio: true });
  pc.addTrack(ms.getTracks()[0]);

  const dc = pc.createDataChannel("oai-events");
  window.call.dc = dc;
  dc.addEventListener("open", () => { document.getElementById("state").textContent = "open"; });
  dc.addEventListener("message", (e) => {
    const ev = JSON.parse(e.data);
    window.events.push(ev);
    log(ev.type);
  });

  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const sdpResponse = await fetch("/v1/realtime/calls", {
    method: "POST",
    body: offer.sdp,
    headers: { Authorization: "Bearer " + EPHEMERAL_KEY, "Content-Type": "application/sdp" },
  });
  window.call.status = sdpResponse.status;
  window.call.location = sdpResponse.headers.get("Location");
  const answer = { type: "answer", sdp: await sdpResponse.text() };
  await pc.setRemoteDescription(answer);
}
// The audio received on the bot's track, from the browser's own stats.
async function inbound() {
  const stats = await window.call.pc.getStats();
  let out = { packets: 0, bytes: 0, energy: 0 };
  stats.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      out = { packets: r.packetsReceived, bytes: r.bytesReceived, energy: r.totalAudioEnergy || 0 };
    }
  });
  return JSON.stringify(out);
}
init().catch((e) => { document.getElementById("state").textContent = "failed: " + e; });
</script></body></html>`

// TestBrowserRealtimeWebRTC: headless Chromium, in a namespace with only
// lo, runs the Realtime WebRTC guide's minimal code against the real
// server: its backend mints a client secret, the page calls
// /v1/realtime/calls with it, and Chromium's fake microphone says
// flite's "what time is it". The data channel brings session.created,
// the transcript and a response.done with the local responder's answer;
// the bot's audio arrives on the track (the browser's inbound-rtp stats:
// packets, bytes and audio energy, so it decoded to sound).
func TestBrowserRealtimeWebRTC(t *testing.T) {
	if !testkit.InLoopbackNetns(t) {
		return
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found; run 'make deps': %v", err)
	}
	// Not defaults, and why: a real Redis (the tests' rule); a backend's
	// token and a secret to sign client secrets with, since the guide's
	// flow is a backend minting an ephemeral key for the page (the
	// defaults, with no authentication, are TestDefaults*'s).
	env := map[string]string{
		"PARLEY_ADDR":          freeAddr(t),
		"REDIS_URL":            redistest.Start(t).URL(),
		"PARLEY_AUTH_TOKENS":   "backend-key",
		"PARLEY_AUTH_SECRET":   "a secret of this test, for client secrets",
		"PARLEY_DRAIN_TIMEOUT": "1s",
	}
	parley := &url.URL{Scheme: "http", Host: startServer(t, env)}
	// The app: its page, its backend's /token, and Parley's API on the
	// same origin through a proxy (the page's fetch is same-origin).
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, realtimePage)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(http.MethodPost, parley.String()+"/v1/realtime/client_secrets",
			bytes.NewReader([]byte(`{"session": {"type": "realtime"}}`)))
		req.Header.Set("Authorization", "Bearer backend-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	mux.Handle("/v1/", httputil.NewSingleHostReverseProxy(parley))
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)

	b := newBrowser(t, chromium, fakeMic(t, "what time is it", 3*time.Second))
	b.run(chromedp.Navigate(app.URL + "/"))
	b.poll(`document.getElementById("state").textContent === "open"`)
	if got := b.eval(`window.call.status + " " + window.call.location + " " + window.call.key.startsWith("ek_")`); !strings.HasPrefix(got, "201 /v1/realtime/calls/rtc_") || !strings.HasSuffix(got, " true") {
		t.Fatalf("the call's answer: %s", got)
	}
	b.poll(`window.events.some(e => e.type === "session.created")`)
	b.poll(`window.events.some(e => e.type === "input_audio_buffer.speech_started")`)
	b.poll(`window.events.some(e => e.type === "response.done")`)
	reply := b.eval(`JSON.stringify(window.events.find(e => e.type === "response.done").response.output)`)
	if !strings.Contains(reply, `"transcript":"It is `) {
		t.Fatalf("the response: %s\nevents: %s", reply, b.eval(`window.events.map(e => e.type).join(" ")`))
	}
	b.poll(`window.events.some(e => e.type === "output_audio_buffer.stopped")`)
	var in struct {
		Packets, Bytes int
		Energy         float64
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := b.evalAsync(`inbound()`)
		if err := json.Unmarshal([]byte(got), &in); err != nil {
			t.Fatalf("stats %s: %v", got, err)
		}
		if in.Packets >= 40 && in.Energy > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot's audio in the browser: %+v", in)
		}
	}
	t.Logf("received %d packets (%s bytes) of the bot's audio, energy %.4f", in.Packets, strconv.Itoa(in.Bytes), in.Energy)
}
