package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/media"
)

// A -record-dir that cannot take recordings stops the server at once,
// saying so.
func TestRecordDirMustBeWritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PARLEY_ADDR": freeAddr(t), "PARLEY_RECORD_DIR": filepath.Join(file, "recordings")}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "-record-dir "+env["PARLEY_RECORD_DIR"]+" cannot take recordings") {
		t.Fatalf("run: %v; want the -record-dir refused", err)
	}
}

// A server recording its calls is killed (SIGKILL) while the bot speaks:
// the recording it was writing decodes, stereo, with the bot's speech on
// the right up to within a second of what the caller had heard, and the
// transcript holds the caller's turn.
func TestRecordingSurvivesAKill(t *testing.T) {
	dir := t.TempDir()
	// One recogniser is plenty for one call, and loads faster.
	p := startDefaultProc(t, "PARLEY_RECORD_DIR="+dir, "PARLEY_ASR_DECODERS=1", "PARLEY_LOG_LEVEL=warn")
	c := dialWS(t, p.addr)
	c.Send(map[string]any{"type": "hello", "audio": map[string]any{"transport": "ws", "codec": "opus"}})
	c.Send(map[string]any{"type": "text", "text": "help"}) // about 8 s spoken
	const heard = 150                                      // frames (3 s) read before the kill
	for frames := 0; frames < heard; {
		_ = c.WS.SetReadDeadline(time.Now().Add(30 * time.Second))
		kind, b, err := c.WS.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if kind == websocket.BinaryMessage {
			frames++
		} else if strings.Contains(string(b), `"type":"error"`) {
			t.Fatalf("error: %s", b)
		}
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()

	wavs, _ := filepath.Glob(filepath.Join(dir, "*", "*.wav"))
	if len(wavs) != 1 {
		t.Fatalf("recordings %v; want one", wavs)
	}
	f, err := os.Open(wavs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil {
		t.Fatalf("the recording of a killed server does not decode: %v", err)
	}
	if w.Channels != 2 || w.Rate != 16000 {
		t.Fatalf("%d channels at %d Hz; want stereo at 16 kHz", w.Channels, w.Rate)
	}
	first, last := loudSpan(w.Samples, 1, w.Rate)
	spoken := time.Duration(last-first) * time.Second / time.Duration(w.Rate)
	t.Logf("%v of the bot's speech in the recording, of %v heard, in %v of audio", spoken, heard*media.FrameDuration, time.Duration(len(w.Samples)/2)*time.Second/16000)
	if first < 0 || spoken < heard*media.FrameDuration-time.Second {
		t.Fatalf("the bot's speech spans %v of the recording; the caller heard %v of it", spoken, heard*media.FrameDuration)
	}
	if l, _ := loudSpan(w.Samples, 0, w.Rate); l >= 0 {
		t.Fatalf("the caller said nothing, but the left channel is loud at %d", l)
	}
	b, err := os.ReadFile(strings.TrimSuffix(wavs[0], ".wav") + ".jsonl")
	if err != nil || !strings.Contains(string(b), `"speaker":"caller","turn":1,"source":"text","text":"help"`) {
		t.Fatalf("transcript %q (%v)", b, err)
	}
}

// loudSpan is the first and last sample (in sample frames) of channel ch
// of interleaved stereo in a 20 ms window louder than -40 dBFS; -1 when
// none is.
func loudSpan(s []int16, ch, rate int) (first, last int) {
	first, last = -1, -1
	n := rate / 50
	for i := 0; 2*(i+n) <= len(s); i += n {
		var sum float64
		for j := i; j < i+n; j++ {
			v := float64(s[2*j+ch])
			sum += v * v
		}
		if 20*math.Log10(math.Sqrt(sum/float64(n))/32768+1e-12) > -40 {
			if first < 0 {
				first = i
			}
			last = i + n
		}
	}
	return first, last
}
