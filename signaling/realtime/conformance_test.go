package realtime_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/npm"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/pcm"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/sphinx"
	"github.com/parleyhq/parley/signaling/certs/certstest"
)

// The conformance suite: the stock clients from npm (pinned by
// testdata/npm's lockfile), unchanged, against the server with its
// offline stack (the local responder, pocketsphinx, flite). Each node
// script prints what it saw as JSON lines.

var (
	speechOnce sync.Once
	sphinxASR  *sphinx.ASR
	fliteTTS   *flite.Voice
	speechErr  error
)

func offline(t *testing.T) (*sphinx.ASR, *flite.Voice) {
	speechOnce.Do(func() {
		if sphinxASR, speechErr = sphinx.New(sphinx.Config{Decoders: 2}); speechErr == nil {
			fliteTTS, speechErr = flite.New(flite.Config{})
		}
	})
	if speechErr != nil {
		t.Fatal(speechErr)
	}
	return sphinxASR, fliteTTS
}

// offlineServer is the server as `parley` starts with no settings: the
// local responder, pocketsphinx and flite.
func offlineServer(t *testing.T, tlsOn bool) *server {
	asr, tts := offline(t)
	return start(t, local.New(local.Config{}), opts{asr: asr, tts: tts, tls: tlsOn})
}

// speechFile is text spoken by flite as PCM16 at 24 kHz, in a file.
func speechFile(t *testing.T, text string) string {
	t.Helper()
	_, tts := offline(t)
	var pcm16 []int16
	if err := tts.Synthesize(context.Background(), text, func(p []int16) error { pcm16 = append(pcm16, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	up, err := media.NewResampler(tts.SampleRate(), 24000)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "speech.pcm")
	if err := os.WriteFile(path, pcm.Append(nil, up.Process(pcm16, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// line is one JSON line a script printed.
type line map[string]any

func (l line) str(k string) string { s, _ := l[k].(string); return s }

// node runs a script of testdata with the npm project's packages, and
// returns its lines. A script that fails, times out or prints "fatal"
// fails the test with its output.
func node(t *testing.T, env []string, script string, args ...string) []line {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (%v); `make deps` installs Node.js", err)
	}
	dir, err := npm.Install("testdata/npm")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join("testdata", script)}, args...)...)
	cmd.Env = append(os.Environ(), append(env, "NODE_PATH="+filepath.Join(dir, "node_modules"), "NODE_NO_WARNINGS=1")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if os.Getenv("PARLEY_TEST_NODE") != "" {
		t.Logf("node %s:\n%s\n%s", script, stdout.String(), stderr.String())
	}
	var lines []line
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines = append(lines, l)
		}
	}
	for _, l := range lines {
		if l.str("t") == "fatal" || l.str("t") == "timeout" {
			runErr = os.ErrInvalid
		}
	}
	if runErr != nil || len(lines) == 0 || lines[len(lines)-1].str("t") != "done" {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, runErr, stdout.String(), stderr.String())
	}
	return lines
}

func pick(lines []line, kind string) []line {
	var out []line
	for _, l := range lines {
		if l.str("t") == kind {
			out = append(out, l)
		}
	}
	return out
}

func noErrors(t *testing.T, lines []line) {
	t.Helper()
	if errs := pick(lines, "error"); len(errs) > 0 {
		t.Fatalf("the client saw errors: %v", errs)
	}
}

func summary(t *testing.T, lines []line) (events []string, audioBytes float64, statuses []string) {
	t.Helper()
	s := pick(lines, "summary")
	if len(s) != 1 {
		t.Fatal("no summary")
	}
	for _, e := range s[0]["events"].([]any) {
		events = append(events, e.(string))
	}
	for _, e := range s[0]["statuses"].([]any) {
		statuses = append(statuses, e.(string))
	}
	return events, s[0]["audioBytes"].(float64), statuses
}

// historyOf is the SDK's history at the end, as JSON.
func historyOf(t *testing.T, lines []line) string {
	t.Helper()
	h := pick(lines, "history")
	if len(h) != 1 {
		t.Fatal("no history")
	}
	b, _ := json.Marshal(h[0]["history"])
	return string(b)
}

func has(events []string, typ string) bool {
	for _, e := range events {
		if e == typ {
			return true
		}
	}
	return false
}

// @openai/agents-realtime's RealtimeSession, text: a message and the
// agent's answer, both in its history.
func TestAgentsSDKText(t *testing.T) {
	s := offlineServer(t, false)
	lines := node(t, nil, "agents.cjs", s.URL, "text")
	noErrors(t, lines)
	ends := pick(lines, "agent_end")
	if len(ends) != 1 || ends[0].str("output") == "" {
		t.Fatalf("agent_end %v", ends)
	}
	hist := historyOf(t, lines)
	if !strings.Contains(hist, `{"text":"hello","type":"input_text"}`) || !strings.Contains(hist, ends[0].str("output")) {
		t.Fatalf("history %s", hist)
	}
}

// RealtimeSession, voice: flite's speech streamed at real time through
// the SDK's default session (semantic VAD, PCM16 at 24 kHz both ways),
// pocketsphinx hears it, the local responder answers, flite speaks; the
// SDK plays audio and keeps both transcripts.
func TestAgentsSDKVoice(t *testing.T) {
	s := offlineServer(t, false)
	lines := node(t, nil, "agents.cjs", s.URL, "voice", speechFile(t, "what time is it"))
	noErrors(t, lines)
	events, audio, statuses := summary(t, lines)
	for _, want := range []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
		"conversation.item.input_audio_transcription.completed", "response.output_audio.delta", "response.done"} {
		if !has(events, want) {
			t.Fatalf("no %s among %v", want, events)
		}
	}
	if audio < 24000*2/2 || len(statuses) == 0 || statuses[0] != "completed" {
		t.Fatalf("%v bytes of audio (want at least half a second), statuses %v", audio, statuses)
	}
	hist := historyOf(t, lines)
	if !strings.Contains(hist, `"role":"user"`) || !strings.Contains(strings.ToLower(hist), "time") || !strings.Contains(hist, `"type":"output_audio"`) {
		t.Fatalf("history %s", hist)
	}
}

// RealtimeSession with a tool() of the agents SDK: the model (the local
// responder) calls it, the SDK runs it once, sends its output and asks
// for the response that uses it.
func TestAgentsSDKTool(t *testing.T) {
	s := offlineServer(t, false)
	lines := node(t, nil, "agents.cjs", s.URL, "tool")
	noErrors(t, lines)
	ran := pick(lines, "tool_ran")
	if len(ran) != 1 || ran[0].str("city") != "Paris" {
		t.Fatalf("the tool ran %v", ran)
	}
	var answer string
	for _, e := range pick(lines, "agent_end") {
		if strings.Contains(e.str("output"), "sunny") {
			answer = e.str("output")
		}
	}
	if answer == "" {
		t.Fatalf("no answer from the tool's output: %v", pick(lines, "agent_end"))
	}
}

// RealtimeSession, an interruption: the caller speaks over a long spoken
// reply; the server cancels it (turn_detected), the SDK's audio is
// interrupted and it truncates the item.
func TestAgentsSDKInterrupt(t *testing.T) {
	s := offlineServer(t, false)
	lines := node(t, nil, "agents.cjs", s.URL, "interrupt", speechFile(t, "stop talking please"))
	noErrors(t, lines)
	events, _, statuses := summary(t, lines)
	if len(pick(lines, "audio_interrupted")) == 0 {
		t.Fatalf("no audio_interrupted; events %v", events)
	}
	if !has(events, "conversation.item.truncated") || len(statuses) < 2 || statuses[0] != "cancelled:turn_detected" {
		t.Fatalf("statuses %v, events %v", statuses, events)
	}
}

// The openai package's OpenAIRealtimeWS, over TLS (it dials wss://
// only): a text response, and an audio one whose deltas decode to real
// PCM (length and level).
func TestOpenAIRealtimeWS(t *testing.T) {
	s := offlineServer(t, true)
	cert := certstest.New(t)
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s.http.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	s.http.StartTLS()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	base := s.http.URL + "/v1"
	lines := node(t, []string{"NODE_EXTRA_CA_CERTS=" + ca}, "openai_ws.cjs", base)
	noErrors(t, lines)
	text := pick(lines, "text")
	if len(text) != 1 || text[0].str("text") == "" || text[0].str("status") != "completed" {
		t.Fatalf("text %v", text)
	}
	a := pick(lines, "audio")
	if len(a) != 1 {
		t.Fatalf("audio %v", lines)
	}
	bytes, rms := a[0]["bytes"].(float64), a[0]["rms"].(float64)
	if bytes < 24000*2/2 || int(bytes)%2 != 0 || rms < 300 {
		t.Fatalf("audio of %v bytes at RMS %v: want at least half a second of speech", bytes, rms)
	}
}
