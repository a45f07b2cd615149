package recordtest

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/record"
)

// Closing is the real recorder, telling the test on Closed when a
// recording has been closed (its file whole).
type Closing struct {
	*record.Recorder
	Closed chan struct{}
}

// Start implements call.Recorder.
func (r Closing) Start(sessionID string, rate int, start time.Time) (call.Recording, error) {
	rec, err := r.Recorder.Start(sessionID, rate, start)
	if err != nil {
		return nil, err
	}
	return closed{rec, r.Closed}, nil
}

type closed struct {
	call.Recording
	done chan struct{}
}

func (r closed) Close() error {
	err := r.Recording.Close()
	close(r.done)
	return err
}

// Line is a line of a recording's transcript.
type Line struct {
	At          float64
	Speaker     string
	Turn        int64
	Source      string
	Text        string
	From, To    *float64
	Interrupted *bool
}

// Transcript reads a recording's transcript.
func Transcript(t testing.TB, name string) []Line {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("transcript line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// Stereo reads a recording that must be stereo at rate: its left and
// right channels.
func Stereo(t testing.TB, name string, rate int) (left, right []int16) {
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
		left, right = append(left, w.Samples[i]), append(right, w.Samples[i+1])
	}
	return left, right
}

// Slice is s (at rate) from second from to second to.
func Slice(s []int16, rate int, from, to float64) []int16 {
	a, b := min(len(s), int(from*float64(rate))), min(len(s), int(to*float64(rate)))
	if a >= b {
		return nil
	}
	return s[a:b]
}

// LoudSpans are the stretches of s, in seconds, whose 10 ms windows are
// louder than -40 dBFS, gaps under 300 ms bridged (the pauses between
// words).
func LoudSpans(s []int16, rate int) [][2]float64 {
	n := rate / 100
	var spans [][2]float64
	for i := 0; i+n <= len(s); i += n {
		if DBFS(s[i:i+n]) <= -40 {
			continue
		}
		from, to := float64(i)/float64(rate), float64(i+n)/float64(rate)
		if k := len(spans) - 1; k >= 0 && from-spans[k][1] < 0.3 {
			spans[k][1] = to
			continue
		}
		spans = append(spans, [2]float64{from, to})
	}
	return spans
}

// DBFS is the level of s.
func DBFS(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return 20 * math.Log10(math.Sqrt(sum/float64(len(s)))/32768+1e-12)
}

// Align is where in s (at rate) the audio a matches best, searching
// within span seconds of guess: its start in seconds, and the normalised
// correlation there (1: the same audio). It steps a quarter of a
// millisecond, then to the sample.
func Align(s, a []int16, rate int, guess, span float64) (at, corr float64) {
	g, w := int(guess*float64(rate)), int(span*float64(rate))
	step := max(1, rate/4000)
	k, _ := bestMatch(s, a, g-w, g+w, step)
	k, corr = bestMatch(s, a, k-step, k+step, 1)
	return float64(k) / float64(rate), corr
}

// bestMatch is the start in s, from..to by step, where a correlates best.
func bestMatch(s, a []int16, from, to, step int) (best int, corr float64) {
	var ea float64
	for _, v := range a {
		ea += float64(v) * float64(v)
	}
	corr = -1
	for k := max(0, from); k <= to && k+len(a) <= len(s); k += step {
		var dot, es float64
		for i, v := range a {
			x := float64(s[k+i])
			dot += x * float64(v)
			es += x * x
		}
		if c := dot / math.Sqrt(ea*es+1); c > corr {
			corr, best = c, k
		}
	}
	return best, corr
}
