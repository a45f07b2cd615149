package record

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/media"
)

const rate = 16000

// frame is 20 ms of a constant value at rate.
func frame(v int16) []int16 {
	f := make([]int16, rate/50)
	for i := range f {
		f[i] = v
	}
	return f
}

// t0 is the calls' start.
var t0 = time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const ms = time.Millisecond

// pos is d in sample frames at rate.
func pos(d time.Duration) int { return int(d.Seconds() * rate) }

func newRecorder(t *testing.T, cfg Config) *Recorder {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	r, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func start(t *testing.T, r *Recorder) *Recording {
	t.Helper()
	rec, err := r.Start("0123abcd", rate, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close() })
	return rec.(*Recording)
}

// path is the recording's file with ext.
func path(r *Recording, ext string) string {
	return strings.TrimSuffix(r.w.wav.Name(), ".wav") + ext
}

// channels reads the WAV file back: its left and right channels.
func channels(t *testing.T, name string) (l, r []int16) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	if w.Channels != 2 || w.Rate != rate {
		t.Fatalf("%d channels at %d Hz; want stereo at %d", w.Channels, w.Rate, rate)
	}
	for i := 0; i+1 < len(w.Samples); i += 2 {
		l, r = append(l, w.Samples[i]), append(r, w.Samples[i+1])
	}
	return l, r
}

// runs describes a channel as its runs of equal samples: "0x320 5x640"
// is 320 zeros, then 640 fives.
func runs(ch []int16) string {
	var out []string
	for i := 0; i < len(ch); {
		j := i
		for j < len(ch) && ch[j] == ch[i] {
			j++
		}
		out = append(out, itoa(int(ch[i]))+"x"+itoa(j-i))
		i = j
	}
	return strings.Join(out, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// Audio is placed by the time it arrived (or was sent), each frame after
// its channel's previous one at the earliest, with jitter bridged and
// true gaps left silent. Read back after Close.
func TestPlacement(t *testing.T) {
	type audio struct {
		ch int
		at time.Duration
		v  int16
	}
	tests := []struct {
		name        string
		audio       []audio
		left, right string
	}{
		{"frames at real time follow each other",
			[]audio{{left, 0, 1}, {left, 20 * ms, 2}, {left, 40 * ms, 3}},
			"1x320 2x320 3x320", "0x960"},
		{"a late start is silence first",
			[]audio{{left, 100 * ms, 1}},
			"0x1600 1x320", "0x1920"},
		{"a burst is played back to back",
			[]audio{{right, 0, 1}, {right, 0, 2}, {right, 0, 3}, {right, 20 * ms, 4}},
			"0x1280", "1x320 2x320 3x320 4x320"},
		{"jitter makes no hole",
			[]audio{{left, 0, 1}, {left, 50 * ms, 2}},
			"1x320 2x320", "0x640"},
		{"a gap is silence",
			[]audio{{left, 0, 1}, {left, 500 * ms, 2}},
			"1x320 0x" + itoa(pos(480*ms)) + " 2x320", "0x" + itoa(pos(520*ms))},
		{"both channels are interleaved by time",
			[]audio{{left, 0, 1}, {left, 20 * ms, 2}, {right, 10 * ms, 7}, {left, 40 * ms, 3}, {right, 30 * ms, 8}},
			"1x320 2x320 3x320", "0x160 7x320 8x320 0x160"},
		{"a frame late by less than the window finds its place",
			[]audio{{left, 0, 1}, {left, 20 * ms, 2}, {left, 40 * ms, 3}, {left, 60 * ms, 4}, {right, 0, 9}},
			"1x320 2x320 3x320 4x320", "9x320 0x960"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := start(t, newRecorder(t, Config{}))
			var n int64
			for _, a := range tc.audio {
				if a.ch == left {
					rec.Caller(frame(a.v), at(a.at))
				} else {
					n++
					rec.Bot(n, frame(a.v), at(a.at))
				}
			}
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			l, r := channels(t, rec.w.wav.Name())
			if got := runs(l); got != tc.left {
				t.Errorf("left: %s; want %s", got, tc.left)
			}
			if got := runs(r); got != tc.right {
				t.Errorf("right: %s; want %s", got, tc.right)
			}
		})
	}
}

// realTime feeds both channels a frame every 20 ms of call time from
// `from` for n frames: the caller's of value 5, the bot's numbered from
// first with its number as value.
func realTime(rec *Recording, from time.Duration, first int64, n int) {
	for i := range n {
		when := at(from + time.Duration(i)*20*ms)
		rec.Caller(frame(5), when)
		rec.Bot(first+int64(i), frame(int16(first)+int16(i)), when)
	}
}

// waitWritten waits until the file, read back as it is, holds at least d
// of audio, and returns its channels: the header says what is written.
func waitWritten(t *testing.T, rec *Recording, d time.Duration) (l, r []int16) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, r = channels(t, rec.w.wav.Name())
		if len(l) >= pos(d) {
			return l, r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d samples written; want %d", len(l), pos(d))
		}
		time.Sleep(5 * ms)
	}
}

// The file is readable while the call goes on: its header is rewritten as
// audio is written, so a crash keeps what was written.
func TestReadableWhileWritten(t *testing.T) {
	// The test feeds audio faster than real time: a queue that takes it all.
	rec := start(t, newRecorder(t, Config{Queue: 10000}))
	realTime(rec, 0, 1, 75) // 1.5 s
	// All but the window, give or take a chunk.
	l, r := waitWritten(t, rec, 1500*ms-window-chunk)
	n := len(l)
	if n > pos(1500*ms-window) {
		t.Fatalf("%d samples written; the window (%v) is kept in memory", n, window)
	}
	want := ""
	for f := 1; f <= n/320; f++ {
		want += " " + itoa(f) + "x320"
	}
	if n%320 != 0 {
		want += " " + itoa(n/320+1) + "x" + itoa(n%320)
	}
	if got := runs(r); got != want[1:] {
		t.Fatalf("right: %s; want %s", got, want[1:])
	}
	if got := runs(l); got != "5x"+itoa(n) {
		t.Fatalf("left: %s", got)
	}
}

// A cut silences the bot's frames after the last one played, up to the
// last one sent, whether they are still in memory or already in the file.
func TestCut(t *testing.T) {
	tests := []struct {
		name          string
		frames        int64
		written       time.Duration // wait until this much is in the file before the cut
		played, sent  int64
		silentFrom    int64 // the first frame silenced; 0: none
		silentThrough int64
	}{
		{"in memory", 10, 0, 4, 10, 5, 10},
		{"in the file", 100, 1500 * ms, 60, 100, 61, 100},
		{"all of it in the file", 100, 1500 * ms, 10, 50, 11, 50},
		{"nothing unplayed", 10, 0, 10, 10, 0, 0},
		{"not what was sent after", 10, 0, 5, 8, 6, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := start(t, newRecorder(t, Config{Queue: 10000}))
			realTime(rec, 0, 1, int(tc.frames))
			if tc.written > 0 {
				waitWritten(t, rec, tc.written)
			}
			rec.Cut(tc.played, tc.sent)
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			l, r := channels(t, rec.w.wav.Name())
			if got, want := runs(l), "5x"+itoa(int(tc.frames)*320); got != want {
				t.Fatalf("left: %s; want %s", got, want)
			}
			for f := int64(1); f <= tc.frames; f++ {
				want := int16(f)
				if f >= tc.silentFrom && f <= tc.silentThrough {
					want = 0
				}
				if got := runs(r[(f-1)*320 : f*320]); got != itoa(int(want))+"x320" {
					t.Fatalf("bot frame %d: %s; want %dx320", f, got, want)
				}
			}
		})
	}
}

// The transcript: a line a turn, times in seconds from the start with 3
// decimals, the bot's from where its frames are in the file.
func TestTranscript(t *testing.T) {
	rec := start(t, newRecorder(t, Config{Queue: 10000}))
	realTime(rec, 0, 1, 10)
	rec.Heard(at(1500*ms), 1, "voice", "what time is it", at(200*ms), at(1001*ms))
	// The bot's frames from 2 s, the first three at once (the pacer's
	// lead): they play back to back, 40 ms ahead of their sending.
	for i := range int64(3) {
		rec.Bot(11+i, frame(1), at(2*time.Second))
	}
	realTime(rec, 2020*ms, 14, 20)
	rec.Spoke(at(3500*ms), 1, "It is noon", 11, 30, true)
	rec.Spoke(at(3600*ms), 2, "", 1, 0, true) // cut before a word
	rec.Heard(at(4*time.Second), 3, "text", "thanks", time.Time{}, time.Time{})
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"at":1.500,"speaker":"caller","turn":1,"source":"voice","text":"what time is it","from":0.200,"to":1.001}`,
		`{"at":3.500,"speaker":"bot","turn":1,"text":"It is noon","from":2.000,"to":2.400,"interrupted":true}`,
		`{"at":3.600,"speaker":"bot","turn":2,"text":"","interrupted":true}`,
		`{"at":4.000,"speaker":"caller","turn":3,"source":"text","text":"thanks"}`,
	}
	b, err := os.ReadFile(path(rec, ".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("transcript:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Past the queue's bound, the oldest audio is dropped and counted; the
// transcript lines stay.
func TestQueueDropsOldestAudio(t *testing.T) {
	rec := &Recording{queue: 3, wake: make(chan struct{}, 1)} // no writer: everything stays queued
	before := count(droppedFrames)
	rec.Caller(frame(1), t0)
	rec.Heard(t0, 1, "voice", "hi", t0, t0)
	for v := int16(2); v <= 5; v++ {
		rec.Caller(frame(v), t0)
	}
	var got []string
	for _, it := range rec.q {
		if it.kind == heardLine {
			got = append(got, it.line.Text)
		} else {
			got = append(got, itoa(int(it.pcm[0])))
		}
	}
	if strings.Join(got, " ") != "hi 3 4 5" {
		t.Fatalf("queued: %v; want the line and the last three frames", got)
	}
	if d := count(droppedFrames) - before; d != 2 {
		t.Fatalf("%v drops counted; want 2", d)
	}
}

// The files' names: the day's folder, the session, the start; a second
// call of the session at the same instant gets its own.
func TestFileNames(t *testing.T) {
	r := newRecorder(t, Config{})
	var names []string
	for range 2 {
		rec := start(t, r)
		names = append(names, strings.TrimPrefix(rec.w.wav.Name(), r.cfg.Dir), strings.TrimPrefix(path(rec, ".jsonl"), r.cfg.Dir))
	}
	want := []string{
		"/2024-05-01/0123abcd-20240501T123000.000Z.wav", "/2024-05-01/0123abcd-20240501T123000.000Z.jsonl",
		"/2024-05-01/0123abcd-20240501T123000.000Z-2.wav", "/2024-05-01/0123abcd-20240501T123000.000Z-2.jsonl",
	}
	if strings.Join(names, " ") != filepath.FromSlash(strings.Join(want, " ")) {
		t.Fatalf("files %v; want %v", names, want)
	}
	if got := fileSafe("../x y"); got != "___x_y" {
		t.Fatalf("fileSafe: %q", got)
	}
}

// A directory that cannot be made or written is refused at start; a
// recording that cannot be opened is an error (the call goes on without).
func TestUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: filepath.Join(file, "rec")}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("New took a directory under a file")
	}
	r := newRecorder(t, Config{})
	if err := os.WriteFile(filepath.Join(r.cfg.Dir, "2024-05-01"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := count(writeErrors)
	if _, err := r.Start("s", rate, t0); err == nil {
		t.Fatal("Start opened a recording where its day's folder is a file")
	}
	if d := count(writeErrors) - before; d != 1 {
		t.Fatalf("%v write errors counted", d)
	}
}

// Retention: recordings last written before it are deleted, and then
// their empty day folders (not today's); newer ones and anything else
// stay.
func TestRetention(t *testing.T) {
	clk := testkit.NewClock()
	now := clk.Now()
	dir := t.TempDir()
	day := func(ago time.Duration) string { return now.Add(-ago).UTC().Format(dayLayout) }
	files := []struct {
		name string
		age  time.Duration
		kept bool
	}{
		{day(40*24*time.Hour) + "/a-1.wav", 40 * 24 * time.Hour, false},
		{day(40*24*time.Hour) + "/a-1.jsonl", 40 * 24 * time.Hour, false},
		{day(31*24*time.Hour) + "/b-1.wav", 31 * 24 * time.Hour, false},
		{day(31*24*time.Hour) + "/notes.txt", 31 * 24 * time.Hour, true},
		{day(29*24*time.Hour) + "/c-1.wav", 29 * 24 * time.Hour, true},
		{day(0) + "/d-1.jsonl", time.Hour, true},
		{"elsewhere/e-1.wav", 40 * 24 * time.Hour, true},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-f.age), now.Add(-f.age)); err != nil {
			t.Fatal(err)
		}
	}
	r := newRecorder(t, Config{Dir: dir, Retention: 30 * 24 * time.Hour, Clock: clk})
	if n := r.sweep(); n != 3 {
		t.Errorf("%d files deleted; want 3", n)
	}
	for _, f := range files {
		_, err := os.Stat(filepath.Join(dir, f.name))
		if kept := err == nil; kept != f.kept {
			t.Errorf("%s: kept %v, want %v (%v)", f.name, kept, f.kept, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, day(40*24*time.Hour))); !os.IsNotExist(err) {
		t.Errorf("the emptied day folder is still there: %v", err)
	}
}

// Run sweeps at once, then every hour of the clock, until its context
// ends.
func TestRetentionRun(t *testing.T) {
	testkit.CheckGoroutines(t)
	clk := testkit.NewClock()
	dir := t.TempDir()
	r := newRecorder(t, Config{Dir: dir, Retention: time.Hour, Clock: clk})
	today := filepath.Join(dir, clk.Now().UTC().Format(dayLayout))
	old := func(name string, age time.Duration) string {
		p := filepath.Join(today, name)
		if err := os.MkdirAll(today, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		when := clk.Now().Add(-age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := func(p string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(p); os.IsNotExist(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not deleted", p)
			}
			time.Sleep(5 * ms)
		}
	}
	first := old("a.wav", 2*time.Hour)
	second := old("b.wav", 30*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }() // ends with ctx
	gone(first)
	if _, err := os.Stat(second); err != nil {
		t.Fatalf("a recording within the retention was deleted: %v", err)
	}
	clk.Advance(time.Hour)
	gone(second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// count is a counter's value.
func count(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// A write that fails stops the recording there, counted once, and Close
// says why; the calls writing to it are none the wiser.
func TestWriteErrorStopsTheRecording(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "x.wav")
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wav, err := os.Open(name) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	txt, err := os.Create(filepath.Join(dir, "x.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &Recording{queue: 10000, wake: make(chan struct{}, 1), done: make(chan struct{}), w: newWriter(wav, txt, rate, t0)}
	before := count(writeErrors)
	openRecordings.Inc() // as Start does: run takes it back
	// The writer: it ends with Close.
	go rec.run(slog.New(slog.DiscardHandler))
	realTime(rec, 0, 1, 100) // 2 s: more than a window and a chunk to write
	deadline := time.Now().Add(10 * time.Second)
	for failed := false; !failed; {
		rec.mu.Lock()
		failed = rec.err != nil
		rec.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the failed write went unnoticed")
		}
		time.Sleep(5 * ms)
	}
	rec.Heard(at(time.Second), 1, "voice", "hi", at(0), at(time.Second))
	if err := rec.Close(); err == nil {
		t.Fatal("Close reported no error")
	}
	if d := count(writeErrors) - before; d != 1 {
		t.Fatalf("%v write errors counted; want 1", d)
	}
	if b, _ := os.ReadFile(txt.Name()); len(b) != 0 {
		t.Fatalf("the transcript was written after the failure: %q", b)
	}
}
