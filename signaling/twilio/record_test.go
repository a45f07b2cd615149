//go:build !nospeech

package twilio

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/record"
)

// A recorded phone call with an interruption. The fake Twilio plays the
// bot's audio a second after it came, so at the barge-in a second of it
// was sent and never heard: the recording's bot channel holds what the
// caller heard by Twilio's marks, sample for sample, and is silent from
// there until the next reply. The file is stereo at the line's 8 kHz, the
// caller on the left; the transcript's times match the audio within
// 100 ms.
func TestPhoneRecordedCall(t *testing.T) {
	asr, v := offline(t)
	dir := t.TempDir()
	rec, err := record.New(record.Config{Dir: dir}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	r := startReplica(t, local.New(local.Config{}), replicaOpts{asr: asr, tts: v, recorder: closeSignal{rec, closed}})
	f := dialTwilio(t, r.mediaURL(), nil, time.Second)
	f.start(wantFormat, nil)
	id := r.sessionOf(t, f.callSid)
	f.openLine()
	f.say(mulawSpeech(t, v, greeting, 500*time.Millisecond, 0))
	f.waitFor("the answer's audio", 30*time.Second, func(in []got, _ []clearSeen) bool { return len(in) >= 75 })
	f.say(mulawSpeech(t, v, "hello there", 0, 1500*time.Millisecond))
	f.waitFor("a clear", 15*time.Second, func(_ []got, c []clearSeen) bool { return len(c) > 0 })
	r.waitEvent(t, id, "the answer to the caller's words", replyDone(2))
	f.quiet(300 * time.Millisecond)
	in, _, _, clears := f.snapshot()
	f.stop()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the recording was not closed when the call ended")
	}

	wavs, _ := filepath.Glob(filepath.Join(dir, "*", "*.wav"))
	if len(wavs) != 1 {
		t.Fatalf("recordings %v; want one", wavs)
	}
	left, right := stereo8k(t, wavs[0])
	lines := transcriptOf(t, strings.TrimSuffix(wavs[0], ".wav")+".jsonl")
	line := func(speaker string, turn int64) recordLine {
		for _, l := range lines {
			if l.Speaker == speaker && l.Turn == turn {
				return l
			}
		}
		t.Fatalf("no %s line for turn %d in %+v", speaker, turn, lines)
		return recordLine{}
	}
	said, cut, answer := line("caller", 2), line("bot", 1), line("bot", 2)
	if said.Text != "hello there" || said.From == nil || cut.From == nil || cut.Interrupted == nil || !*cut.Interrupted ||
		answer.From == nil || answer.Interrupted == nil || *answer.Interrupted {
		t.Fatalf("transcript: %+v", lines)
	}
	if full := local.New(local.Config{}).Reply(greeting); !strings.HasPrefix(full, cut.Text) || cut.Text == full {
		t.Fatalf("the cut reply %q is not a strict prefix of %q", cut.Text, full)
	}

	// What the caller heard of the first reply: its frames up to the last
	// mark Twilio returned before the clear.
	played := clears[0].played
	if unheard := int64(clears[0].frames) - played; unheard < 40 {
		t.Fatalf("only %d frames sent and not played at the cut: the fake's buffer is not a second", unheard)
	}
	var heard []int16
	for _, g := range in[:played] {
		heard = g711.MuLaw.AppendPCM(heard, g.payload)
	}
	const half = g711.Rate / 2
	begins, c1 := match8k(right, heard[:half], *cut.From, 0.2)
	ends, c2 := match8k(right, heard[len(heard)-half:], *cut.To-0.5, 0.2)
	t.Logf("the heard reply: %d frames; its first half second at %.3f s (correlation %.3f), its last at %.3f s (%.3f); transcript %.3f to %.3f s",
		played, begins, c1, ends+0.5, c2, *cut.From, *cut.To)
	// Each frame is recorded when it left: a late tick of the pacer (a
	// loaded machine) leaves a short hole in the file that the fake's
	// contiguous copy lacks, hence not 1.
	if c1 < 0.9 || c2 < 0.9 {
		t.Fatalf("what the caller heard is not in the bot's channel (best matches %.3f, %.3f)", c1, c2)
	}
	within := func(what string, says, shows float64) {
		t.Helper()
		if math.Abs(says-shows) > 0.1 {
			t.Errorf("%s: the transcript says %.3f s, the audio shows %.3f s", what, says, shows)
		}
	}
	within("the cut reply begins", *cut.From, begins)
	within("the cut reply ends", *cut.To, ends+0.5)
	// The second sent and never heard is not in the file.
	if loud := spans8k(cut8k(right, ends+0.5+0.001, *answer.From)); len(loud) != 0 {
		t.Fatalf("the bot's channel is loud %.3f s after the cut: audio the caller never heard", loud[0][0])
	}
	// The caller's words, on the left, where the transcript puts them.
	caller := spans8k(left)
	nearest := caller[0]
	for _, s := range caller {
		if math.Abs(s[0]-*said.From) < math.Abs(nearest[0]-*said.From) {
			nearest = s
		}
	}
	within("the caller's words begin", *said.From, nearest[0])
	if ev := r.waitEvent(t, id, "the cut reply", replyDone(1)).(event.ReplyDone); ev.Text != cut.Text {
		t.Fatalf("stored %q, recorded %q", ev.Text, cut.Text)
	}
}

// closeSignal is the real recorder, telling the test when a recording is
// closed (its file whole).
type closeSignal struct {
	*record.Recorder
	closed chan struct{}
}

func (r closeSignal) Start(sessionID string, rate int, start time.Time) (call.Recording, error) {
	rec, err := r.Recorder.Start(sessionID, rate, start)
	if err != nil {
		return nil, err
	}
	return closedRecording{rec, r.closed}, nil
}

type closedRecording struct {
	call.Recording
	closed chan struct{}
}

func (r closedRecording) Close() error {
	err := r.Recording.Close()
	close(r.closed)
	return err
}

// recordLine is a line of a recording's transcript.
type recordLine struct {
	Speaker     string
	Turn        int64
	Text        string
	From, To    *float64
	Interrupted *bool
}

func transcriptOf(t *testing.T, name string) []recordLine {
	t.Helper()
	b, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var lines []recordLine
	sc := bufio.NewScanner(b)
	for sc.Scan() {
		var l recordLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("transcript line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// stereo8k reads a recording that must be stereo at 8 kHz.
func stereo8k(t *testing.T, name string) (left, right []int16) {
	t.Helper()
	b, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w, err := media.ReadWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if w.Channels != 2 || w.Rate != g711.Rate {
		t.Fatalf("%d channels at %d Hz; want stereo at %d", w.Channels, w.Rate, g711.Rate)
	}
	for i := 0; i+1 < len(w.Samples); i += 2 {
		left, right = append(left, w.Samples[i]), append(right, w.Samples[i+1])
	}
	return left, right
}

// match8k is where in s the audio a matches best, within span seconds of
// guess: its start in seconds and the normalised correlation (1: the same
// samples).
func match8k(s, a []int16, guess, span float64) (at, corr float64) {
	var ea float64
	for _, v := range a {
		ea += float64(v) * float64(v)
	}
	g, w := int(guess*g711.Rate), int(span*g711.Rate)
	best, corr := 0, -1.0
	for k := max(0, g-w); k <= g+w && k+len(a) <= len(s); k++ {
		var dot, es float64
		for i, v := range a {
			x := float64(s[k+i])
			dot += x * float64(v)
			es += x * x
		}
		if c := dot / math.Sqrt(ea*es+1); c > corr {
			best, corr = k, c
		}
	}
	return float64(best) / g711.Rate, corr
}

// cut8k is s from second from to second to.
func cut8k(s []int16, from, to float64) []int16 {
	a, b := min(len(s), int(from*g711.Rate)), min(len(s), int(to*g711.Rate))
	if a >= b {
		return nil
	}
	return s[a:b]
}

// spans8k are the stretches of s, in seconds, whose 10 ms windows are
// louder than -40 dBFS, gaps under 300 ms bridged (the pauses between
// words).
func spans8k(s []int16) [][2]float64 {
	const n = g711.Rate / 100
	var spans [][2]float64
	for i := 0; i+n <= len(s); i += n {
		var sum float64
		for _, v := range s[i : i+n] {
			sum += float64(v) * float64(v)
		}
		if 20*math.Log10(math.Sqrt(sum/n)/32768+1e-12) <= -40 {
			continue
		}
		from, to := float64(i)/g711.Rate, float64(i+n)/g711.Rate
		if k := len(spans) - 1; k >= 0 && from-spans[k][1] < 0.3 {
			spans[k][1] = to
			continue
		}
		spans = append(spans, [2]float64{from, to})
	}
	return spans
}
