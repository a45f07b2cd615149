//go:build !nospeech

package main

import (
	"context"
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
	if os.Getenv("PARLEY_IN_NETNS") == "" {
		reexecInNetns(t)
		return
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found; run 'make deps': %v", err)
	}
	env := map[string]string{
		"PARLEY_ADDR":              freeAddr(t),
		"REDIS_URL":                redistest.Start(t).URL(),
		"PARLEY_WEBRTC_INTERFACES": "lo",
		"PARLEY_WEBRTC_LOOPBACK":   "true",
		"PARLEY_LOCAL_DELAY":       "40ms",
		"PARLEY_RATE_SESSION":      "0",
		"PARLEY_DRAIN_TIMEOUT":     "1s",
	}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() { cancel(); <-done }()
	url := "http://" + cfg.Addr + "/"
	waitUp(t, "http://"+cfg.Addr+"/readyz")
	mic := fakeMic(t, "what time is it")

	t.Run("text chat without a microphone", func(t *testing.T) {
		b := newBrowser(t, chromium, "")
		b.run(chromedp.Navigate(url))
		b.run(chromedp.WaitVisible("#send"))
		b.run(chromedp.SendKeys("#text", "what time is it"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
		b.expectUserTurns("what time is it")
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
			b.poll(`[...document.querySelectorAll('.msg .lat')].some(e => e.textContent.includes('voice-to-voice'))`)
			b.expectUserTurns("what time is it")
			if transport == "webrtc" {
				b.screenshot("../../bin/screenshot.png")
			}
		})
	}

	t.Run("with authentication the page passes its token on", func(t *testing.T) {
		aenv := map[string]string{"PARLEY_ADDR": freeAddr(t), "REDIS_URL": env["REDIS_URL"], "PARLEY_RATE_SESSION": "0",
			"PARLEY_DRAIN_TIMEOUT": "1s", "PARLEY_AUTH_TOKENS": "page-token", "PARLEY_ASR": "off"}
		acfg, err := parseConfig(nil, func(k string) string { return aenv[k] })
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(context.Background())
		adone := make(chan error, 1)
		go func() { adone <- run(actx, acfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		defer func() { acancel(); <-adone }()
		waitUp(t, "http://"+acfg.Addr+"/readyz")
		// Without the token the socket is refused: the page says why.
		nb := newBrowser(t, chromium, "")
		nb.run(chromedp.Navigate("http://" + acfg.Addr + "/"))
		nb.poll(`document.getElementById('status').textContent.startsWith('unauthorized: a token is required')`)
		b := newBrowser(t, chromium, "")
		b.run(chromedp.Navigate("http://" + acfg.Addr + "/?access_token=page-token"))
		b.run(chromedp.WaitVisible("#send"))
		b.run(chromedp.SendKeys("#text", "what time is it"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
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
		b.run(chromedp.Navigate("http://parley.test:" + port(t, cfg.Addr) + "/"))
		if got := b.eval(`window.isSecureContext + ' ' + typeof navigator.mediaDevices`); got != "false undefined" {
			t.Fatalf("over http://parley.test the page has secure context and media devices %q, want false undefined", got)
		}
		b.run(chromedp.Navigate("https://parley.test:" + port(t, tcfg.Addr) + "/"))
		b.run(chromedp.WaitVisible("#send"))
		b.poll(`window.parley.ws && window.parley.ws.url.startsWith('wss://parley.test:') && window.parley.ws.readyState === WebSocket.OPEN`)
		b.run(chromedp.SendKeys("#text", "what time is it"))
		b.run(chromedp.Click("#send"))
		b.poll(`[...document.querySelectorAll('.msg.bot')].some(e => e.textContent.startsWith('It is '))`)
		b.eval(`navigator.mediaDevices.getUserMedia({audio: true}).then(s => { window.micTracks = s.getAudioTracks().length; })`)
		b.poll(`window.micTracks === 1`)
	})

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

// reexecInNetns runs this test again inside a new network namespace.
func reexecInNetns(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare not found: %v", err)
	}
	cmd := exec.Command("unshare", "-n", "sh", "-c",
		`ip link set lo up && exec "$0" -test.run '^TestBrowser$' -test.v -test.timeout 5m`, os.Args[0])
	cmd.Env = append(os.Environ(), "PARLEY_IN_NETNS=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		// Either the test failed inside (its output is above), or unshare
		// was refused: it needs root or user namespaces.
		t.Fatalf("the browser test in its network namespace: %v", err)
	}
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
// 48 kHz, with silence before and after (the VAD needs the pause).
func fakeMic(t *testing.T, text string) string {
	v, err := flite.New(flite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var pcm16 []int16
	_ = v.Synthesize(context.Background(), text, func(p []int16) error { pcm16 = append(pcm16, p...); return nil })
	up, _ := media.NewResampler(16000, 48000)
	pcm := up.Process(pcm16, make([]int16, 48000))
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
