//go:build !nospeech

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/npm"
	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/signaling/certs/certstest"
)

// TestBrowser drives the page in headless Chromium against the real
// server. Everything runs in a fresh network namespace with only the
// loopback interface: the test binary re-executes itself inside
// `unshare -n`, so neither the browser nor WebRTC can reach anything else.
func TestBrowser(t *testing.T) {
	// The MCP server of the tools subtest is installed out here, where
	// npm can reach its registry (once: it is cached).
	everything := npm.Bin(t, "../../pipeline/tools/mcp/testdata/npm", "mcp-server-everything")
	if !testkit.InLoopbackNetns(t) {
		return
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found; run 'make deps': %v", err)
	}
	// Every WebRTC setting has its default: a call on a host with only
	// loopback must work as it comes. Not defaults, and why: a real Redis
	// (the tests' rule); the offline responder 40 ms a word, so that a
	// reply streams long enough to break the socket under it; no per-session
	// turn rate, as the subtests type fast; a short drain, for the test's
	// end. TestDefaultsServe300ConcurrentUsers covers the defaults.
	env := map[string]string{
		"PARLEY_ADDR":          freeAddr(t),
		"REDIS_URL":            redistest.Start(t).URL(),
		"PARLEY_LOCAL_DELAY":   "40ms",
		"PARLEY_RATE_SESSION":  "0",
		"PARLEY_DRAIN_TIMEOUT": "1s",
	}
	url := "http://" + startServer(t, env) + "/"
	mic := fakeMic(t, "what time is it", time.Second)

	t.Run("text chat without a microphone", func(t *testing.T) {
		b := newBrowser(t, chromium, "")
		b.run(chromedp.Navigate(url))
		b.run(chromedp.WaitVisible("#send"))
		b.run(chromedp.SendKeys("#text", "what time is it"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
		b.expectUserTurns("what time is it")
	})

	t.Run("a tool call in the transcript", func(t *testing.T) {
		// An MCP server (not a default: there is none), whose echo tool
		// the offline responder calls when told to echo.
		file := filepath.Join(t.TempDir(), "mcp.json")
		body, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{"everything": map[string]any{"command": everything, "args": []string{"stdio"}}}})
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		menv := map[string]string{"PARLEY_ADDR": freeAddr(t), "REDIS_URL": env["REDIS_URL"], "PARLEY_DRAIN_TIMEOUT": "1s",
			"PARLEY_ASR": "off", "PARLEY_MCP_CONFIG": file}
		murl := "http://" + startServer(t, menv) + "/"
		b := newBrowser(t, chromium, "")
		b.run(chromedp.Navigate(murl))
		b.run(chromedp.WaitVisible("#send"))
		// The server's tools come up with it, a moment after it listens.
		b.poll(`fetch('/metrics').then(r => r.text()).then(m => window.mcpUp = m.includes('\nparley_mcp_servers_up 1\n')) && window.mcpUp`)
		b.run(chromedp.SendKeys("#text", "echo hello page"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot details.tool')].some(d => d.querySelector('summary').textContent === 'tool: echo' && d.querySelector('.out').textContent.includes('Echo: hello page') && !d.open)`)
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.includes('The echo tool says: Echo: hello page'))`)
	})

	for _, transport := range []string{"webrtc", "ws"} {
		t.Run("call over "+transport, func(t *testing.T) {
			b := newBrowser(t, chromium, mic)
			b.run(chromedp.Navigate(url))
			b.run(chromedp.WaitVisible("#call"))
			b.eval(fmt.Sprintf(`document.getElementById('transport').value = %q`, transport))
			b.run(chromedp.Click("#call"))
			b.poll(`[...document.querySelectorAll('.msg.user')].some(e => e.textContent === 'what time is it')`)
			b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
			// The bot's voice reached the page's AnalyserNode: sound, not silence.
			b.poll(`window.parley.botLevel > 0.01`)
			b.poll(`[...document.querySelectorAll('.msg .lat')].some(e => /voice-to-voice \d+ ms \(end of turn \d+ ms \+ server \d+ ms\)/.test(e.textContent))`)
			b.expectUserTurns("what time is it")
			// The call stayed on the transport asked for: no fallback.
			if got := b.eval(`window.parley.call.transport`); got != transport {
				t.Fatalf("the call is over %s, want %s", got, transport)
			}
			b.expectNoLine(fallbackLine)
			if transport == "webrtc" {
				b.screenshot("../../bin/screenshot.png")
			}
		})
	}

	t.Run("a WebRTC call that cannot connect goes on over the WebSocket", func(t *testing.T) {
		// A server that gathers no usable candidate: an interface that does
		// not exist, and loopback off. These are not defaults, on purpose:
		// they make WebRTC fail here as it fails where no path joins the
		// browser and the server (a firewall, a NAT without TURN).
		fenv := map[string]string{"PARLEY_ADDR": freeAddr(t), "REDIS_URL": env["REDIS_URL"], "PARLEY_RATE_SESSION": "0",
			"PARLEY_DRAIN_TIMEOUT": "1s", "PARLEY_ASR_DECODERS": "1",
			"PARLEY_WEBRTC_INTERFACES": "parley-none0", "PARLEY_WEBRTC_LOOPBACK": "off"}
		furl := "http://" + startServer(t, fenv) + "/"
		// The caller speaks once the call has had time to fall back.
		b := newBrowser(t, chromium, fakeMic(t, "what time is it", 15*time.Second))
		b.run(chromedp.Navigate(furl))
		b.run(chromedp.WaitVisible("#call"))
		b.eval(`document.getElementById('transport').value = 'webrtc'`)
		b.run(chromedp.Click("#call"))
		b.poll(fmt.Sprintf(`[...document.querySelectorAll('.msg.sys')].some(e => e.textContent === %q)`, fallbackLine))
		b.poll(`[...document.querySelectorAll('.msg.user')].some(e => e.textContent === 'what time is it')`)
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
		b.poll(`window.parley.botLevel > 0.01`)
		b.expectUserTurns("what time is it")
		if got := b.eval(`window.parley.call.transport + ' ' + document.getElementById('call').textContent`); got != "ws Hang up" {
			t.Fatalf("after the fallback: %s", got)
		}
		if n := b.eval(`document.querySelectorAll('.msg.err').length`); n != "0" {
			t.Fatalf("%s error lines: %s", n, b.eval(`document.getElementById('log').innerText`))
		}
	})

	t.Run("with authentication the page passes its token on", func(t *testing.T) {
		// Voice is off on this server (-asr off): a call is refused, which
		// the page shows.
		aenv := map[string]string{"PARLEY_ADDR": freeAddr(t), "REDIS_URL": env["REDIS_URL"], "PARLEY_RATE_SESSION": "0",
			"PARLEY_DRAIN_TIMEOUT": "1s", "PARLEY_AUTH_TOKENS": "page-token", "PARLEY_ASR": "off"}
		addr := startServer(t, aenv)
		// Without the token the socket is refused: the page says why.
		nb := newBrowser(t, chromium, "")
		nb.run(chromedp.Navigate("http://" + addr + "/"))
		nb.poll(`document.getElementById('status').textContent.startsWith('unauthorized: a token is required')`)
		b := newBrowser(t, chromium, mic)
		b.run(chromedp.Navigate("http://" + addr + "/?access_token=page-token"))
		b.run(chromedp.WaitVisible("#send"))
		b.run(chromedp.SendKeys("#text", "what time is it"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)

		t.Run("a call the server refuses is shown as failed", func(t *testing.T) {
			b.run(chromedp.Click("#call"))
			b.poll(`[...document.querySelectorAll('.msg.err')].some(e => e.textContent.startsWith('Voice is not available here'))`)
			b.poll(`document.getElementById('state').textContent === 'call failed' && document.getElementById('call').textContent === 'Call'`)
			// It stays so: no "listening" or "in a call" for a dead call.
			time.Sleep(time.Second)
			if got := b.eval(`document.getElementById('state').textContent + ' | ' + document.getElementById('status').textContent + ' | ' + !!window.parley.call`); got != "call failed | connected | false" {
				t.Fatalf("after the refused call: %s", got)
			}
			// The session goes on for text.
			b.run(chromedp.SendKeys("#text", "what is the date"))
			b.run(chromedp.Click("#send"))
			b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('Today is '))`)
		})
	})

	t.Run("over https from a name that is not loopback, as on a LAN", func(t *testing.T) {
		// Chromium maps parley.test to 127.0.0.1 and trusts this one
		// certificate (by its key's hash), as a LAN caller's browser would
		// once the certificate is accepted.
		cert := certstest.New(t, "parley.test")
		certFile, keyFile := tlsFiles(t, cert)
		tenv := map[string]string{"PARLEY_ADDR": freeAddr(t), "REDIS_URL": env["REDIS_URL"], "PARLEY_RATE_SESSION": "0",
			"PARLEY_DRAIN_TIMEOUT": "1s", "PARLEY_ASR": "off", "PARLEY_TLS_CERT": certFile, "PARLEY_TLS_KEY": keyFile}
		tcfg, err := parseConfig(nil, func(k string) string { return tenv[k] })
		if err != nil {
			t.Fatal(err)
		}
		tctx, tcancel := context.WithCancel(context.Background())
		tdone := make(chan error, 1)
		go func() { tdone <- run(tctx, tcfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		defer func() { tcancel(); <-tdone }()
		waitHTTPS(t, httpsClient(cert), "https://"+tcfg.Addr+"/readyz")
		b := newBrowser(t, chromium, "", chromedp.Flag("host-resolver-rules", "MAP parley.test 127.0.0.1"),
			chromedp.Flag("ignore-certificate-errors-spki-list", cert.SPKIHash()))
		// Over plain HTTP, a name that is not loopback gets no microphone:
		// why a LAN needs TLS.
		b.run(chromedp.Navigate("http://parley.test:" + port(t, env["PARLEY_ADDR"]) + "/"))
		if got := b.eval(`window.isSecureContext + ' ' + typeof navigator.mediaDevices`); got != "false undefined" {
			t.Fatalf("over http://parley.test the page has secure context and media devices %q, want false undefined", got)
		}
		b.run(chromedp.Navigate("https://parley.test:" + port(t, tcfg.Addr) + "/"))
		b.run(chromedp.WaitVisible("#send"))
		b.poll(`window.parley.client && window.parley.client.url.startsWith('wss://parley.test:') && window.parley.client.open`)
		b.run(chromedp.SendKeys("#text", "what time is it"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
		b.eval(`navigator.mediaDevices.getUserMedia({audio: true}).then(s => { window.micTracks = s.getAudioTracks().length; })`)
		b.poll(`window.micTracks === 1`)
	})
	t.Run("a call whose fallback fails too is shown as failed", func(t *testing.T) { failedFallback(t, chromium, mic) })
	t.Run("reconnects wait as the server says, and back off when refused", func(t *testing.T) { reconnectPolicy(t, chromium) })

	t.Run("reconnect mid-reply shows nothing twice and loses nothing", func(t *testing.T) {
		full := local.New(local.Config{}).Reply("help")
		b := newBrowser(t, chromium, "")
		b.run(chromedp.Navigate(url))
		b.run(chromedp.WaitVisible("#send"))
		b.run(chromedp.SendKeys("#text", "help"))
		b.run(chromedp.Click("#send"))
		// Some of the reply is shown, not all: break the socket now.
		b.poll(`(() => { const e = document.querySelector('.msg.bot'); return e && e.textContent.length > 0 && e.textContent.length < 40; })()`)
		b.eval(`window.parley.dropSocket()`)
		b.poll(fmt.Sprintf(`(() => { const e = document.querySelectorAll('.msg.bot'); return e.length === 1 && e[0].textContent === %q; })()`, full))
		b.poll(`[...document.querySelectorAll('.msg.sys')].some(e => e.textContent.startsWith('Reconnected'))`)
		b.expectUserTurns("help")
		if n := b.eval(`document.querySelectorAll('.msg.bot').length`); n != "1" {
			t.Fatalf("%s bot messages after the reconnect, want 1", n)
		}
	})
}

// fallbackLine is what the page says when a call moves to the WebSocket.
const fallbackLine = "WebRTC could not connect; the call goes on over the WebSocket."

// startServer runs the real server with env as its environment until the
// test ends, and returns its address once it is ready.
func startServer(t *testing.T, env map[string]string) string {
	t.Helper()
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUp(t, "http://"+cfg.Addr+"/readyz")
	return cfg.Addr
}

// evalAsync is eval of an expression whose value is a promise.
func (b *browser) evalAsync(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return fmt.Sprint(v)
}

func waitUp(t *testing.T, url string) {
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never came up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeMic writes what Chromium's fake microphone will say: flite kal16 at
// 48 kHz, after lead of silence, with silence after (the VAD needs the
// pause).
func fakeMic(t *testing.T, text string, lead time.Duration) string {
	v, err := flite.New(flite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var pcm16 []int16
	_ = v.Synthesize(context.Background(), text, func(p []int16) error { pcm16 = append(pcm16, p...); return nil })
	up, _ := media.NewResampler(16000, 48000)
	pcm := up.Process(pcm16, make([]int16, int(lead.Seconds()*48000)))
	pcm = append(pcm, make([]int16, 48000*3)...)
	path := filepath.Join(t.TempDir(), "mic.wav")
	if err := os.WriteFile(path, (&media.WAV{Rate: 48000, Channels: 1, Samples: pcm}).Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T, chromium, micWAV string, extra ...chromedp.ExecAllocatorOption) *browser {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1000, 800),
	}
	if micWAV != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-audio-capture", micWAV+"%noloop"))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	return &browser{t: t, ctx: ctx}
}

func (b *browser) run(a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, a); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return fmt.Sprint(v)
}

// poll waits until js is true (a hang guard, not a timing assertion).
func (b *browser) poll(js string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(40*time.Second))); err != nil {
		log, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById('log').innerText + ' | state: ' + document.getElementById('state').textContent`))
		b.t.Fatalf("waiting for %s: %v\npage: %s", js, err, log)
	}
}

// expectNoLine checks the log has no line with this text.
func (b *browser) expectNoLine(text string) {
	b.t.Helper()
	if got := b.eval(fmt.Sprintf(`[...document.querySelectorAll('.msg')].some(e => e.textContent === %q)`, text)); got != "false" {
		b.t.Fatalf("the page says %q", text)
	}
}

// expectUserTurns checks the page shows exactly these user turns.
func (b *browser) expectUserTurns(want ...string) {
	b.t.Helper()
	got := b.eval(`[...document.querySelectorAll('.msg.user')].map(e => e.textContent).join('|')`)
	if got != strings.Join(want, "|") {
		b.t.Fatalf("user turns on the page: %q, want %q", got, want)
	}
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // quality 100 means PNG
	if err != nil {
		b.t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
