package call

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/media/g711"
	"github.com/parleyhq/parley/media/pcm"
	"github.com/parleyhq/parley/pipeline/event"
)

// recorded is a fake Recorder and the one Recording it opens: what the
// call gave it. (pipeline/record's own tests, and the end-to-end test in
// signaling/parley, read back the files the real one writes.)
type recorded struct {
	err error // Start's

	mu sync.Mutex
	d  recordings
}

// recordings is what a recorded was given.
type recordings struct {
	started []string // session, rate, start
	caller  []int16
	frames  []int64   // the bot frames' numbers
	bot     [][]int16 // and their audio
	cuts    [][2]int64
	heard   []heardTurn
	spoke   []spokeTurn
	closed  int
}

type heardTurn struct {
	turn     int64
	source   event.Source
	text     string
	from, to time.Time
}

type spokeTurn struct {
	turn        int64
	text        string
	first, last int64
	cut         bool
}

func (f *recorded) Start(sessionID string, rate int, start time.Time) (Recording, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.started = append(f.d.started, sessionID, strconv.Itoa(rate), start.String())
	if f.err != nil {
		return nil, f.err
	}
	return f, nil
}

func (f *recorded) Caller(pcm []int16, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.caller = append(f.d.caller, pcm...)
}

func (f *recorded) Bot(frame int64, pcm []int16, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.frames = append(f.d.frames, frame)
	f.d.bot = append(f.d.bot, append([]int16(nil), pcm...))
}

func (f *recorded) Cut(played, sent int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.cuts = append(f.d.cuts, [2]int64{played, sent})
}

func (f *recorded) Heard(at time.Time, turn int64, source event.Source, text string, from, to time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.heard = append(f.d.heard, heardTurn{turn, source, text, from, to})
}

func (f *recorded) Spoke(at time.Time, turn int64, text string, first, last int64, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.spoke = append(f.d.spoke, spokeTurn{turn, text, first, last, cut})
}

func (f *recorded) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.closed++
	return nil
}

// snapshot is a copy of what was recorded so far.
func (f *recorded) snapshot() recordings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d
}

// The recording gets the caller's audio as it comes, each bot frame as it
// is sent (decoded back from the Output's codec), the turns with what was
// heard of them, a cut where the caller barged in (up to what the client
// says it played), and its Close when the call ends.
func TestRecordingHooks(t *testing.T) {
	tests := []struct {
		name   string
		played int64 // what the client says it played; -1: an Output without Played
		heard  string
	}{
		{"sent is played", -1, s1 + " Tomorrow it will rain in"},
		{"played less than sent", 51, s1 + " Tomorrow it will"},
	}
	const sent = 36 + 25
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorded{}
			var played *fakes.PlayedOutput
			r := newRig(t, heard("hello", "is it cold"), func(r *rig) {
				r.recorder = rec
				if tc.played >= 0 {
					played = withPlayed(r)
				}
			})
			began := r.clk.Now() // the clock stands still while the rig speaks
			r.spokenTurn(1)
			r.turns.Write(1, strings.Join([]string{s1, s2, s3}, " "))
			r.lead(0)
			r.tick(sent - 3)
			if played != nil {
				played.SetPlayed(tc.played)
			}
			r.say(400 * time.Millisecond) // the barge-in, and turn 2
			r.turns.WaitFinishes(t, 1)
			r.following(2)
			r.turns.Write(2, s3)
			r.finishAfterTicks(2)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			got := rec.snapshot()

			if want := []string{sessionID, "16000", began.String()}; !reflect.DeepEqual(got.started, want) {
				t.Errorf("started %v; want %v", got.started, want)
			}
			// Two utterances, each leadFrames of silence, 400 ms of tone
			// and silence until the VAD's end: all of it, loud in places.
			if n := len(got.caller); n%r.inFrame() != 0 || n < 2*(leadFrames+20)*r.inFrame() || testkit.RMS(got.caller) == 0 {
				t.Errorf("%d caller samples recorded (RMS %.0f)", n, testkit.RMS(got.caller))
			}
			// Every frame sent, in order, as the caller got it.
			frames := r.out.Frames()
			if len(got.frames) != len(frames) || len(frames) != sent+r.frames16(s3) {
				t.Fatalf("%d bot frames recorded of %d sent", len(got.frames), len(frames))
			}
			dec, _ := pcm.Codec{Rate: 16000}.NewDecoder(16000)
			for i, f := range frames {
				want, _ := dec.Decode(f)
				if got.frames[i] != int64(i+1) || !reflect.DeepEqual(got.bot[i], want) {
					t.Fatalf("bot frame %d recorded as frame %d, or not as sent", i+1, got.frames[i])
				}
			}
			wantPlayed := int64(sent)
			if tc.played >= 0 {
				wantPlayed = tc.played
			}
			if want := [][2]int64{{wantPlayed, sent}}; !reflect.DeepEqual(got.cuts, want) {
				t.Errorf("cuts %v; want %v", got.cuts, want)
			}
			// The utterances' times: back from the frame that started it
			// (the VAD's 200 ms, to the end of that frame) and from the one
			// that ended it (its 300 ms of silence: the endpointing's for a
			// short reply, "hello").
			wantHeard := []heardTurn{
				{1, event.SourceVoice, "hello", began.Add(20*time.Millisecond - 200*time.Millisecond), began.Add(20*time.Millisecond - 300*time.Millisecond)},
			}
			if len(got.heard) != 2 || !reflect.DeepEqual(got.heard[:1], wantHeard) || got.heard[1].turn != 2 || got.heard[1].text != "is it cold" {
				t.Errorf("heard %+v; want %+v, then turn 2", got.heard, wantHeard)
			}
			wantSpoke := []spokeTurn{
				{1, tc.heard, 1, wantPlayed, true},
				{2, s3, sent + 1, int64(sent + r.frames16(s3)), false},
			}
			if !reflect.DeepEqual(got.spoke, wantSpoke) {
				t.Errorf("spoke %+v; want %+v", got.spoke, wantSpoke)
			}
			if got.closed != 1 {
				t.Errorf("closed %d times", got.closed)
			}
		})
	}
}

// A typed turn is recorded as the caller's, with no times of speech.
func TestRecordingTypedTurn(t *testing.T) {
	rec := &recorded{}
	r := newRig(t, func(r *rig) { r.recorder = rec })
	turn, err := r.c.SubmitText(t.Context(), "is it cold")
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.snapshot().heard; !reflect.DeepEqual(got, []heardTurn{{turn, event.SourceText, "is it cold", time.Time{}, time.Time{}}}) {
		t.Fatalf("heard %+v", got)
	}
}

// A recording that cannot start leaves the call as it would be unrecorded.
func TestRecordingThatFailsToStart(t *testing.T) {
	rec := &recorded{err: errors.New("disk full")}
	r := newRig(t, heard("hello"), func(r *rig) { r.recorder = rec })
	r.spokenTurn(1)
	r.turns.Write(1, s3)
	if fin := r.finishAfterTicks(1)[0]; fin.Heard != s3 || fin.Cut {
		t.Fatalf("finished %+v", fin)
	}
	if got := rec.snapshot(); len(got.started) != 3 || len(got.frames) != 0 || got.closed != 0 {
		t.Fatalf("recorded %+v", got)
	}
}

// The recording is at the caller's rate, whatever the bot's codec: a
// phone call's G.711 at 8 kHz as it is, Opus-like audio at another rate
// resampled to it. The bot's tone arrives at the recording's rate.
func TestRecordingAtTheCallersRate(t *testing.T) {
	tests := []struct {
		name  string
		in    int
		codec media.Codec
	}{
		{"a phone call: G.711 at 8 kHz", 8000, g711.MuLaw},
		{"PCM at 24 kHz to a 16 kHz caller", 16000, pcm.Codec{Rate: 24000}},
		{"PCM at 16 kHz to an 8 kHz caller", 8000, pcm.Codec{Rate: 16000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorded{}
			r := newRig(t, heard("hello"), func(r *rig) {
				r.recorder, r.media = rec, Media{InRate: tc.in, Out: tc.codec}
			})
			r.spokenTurn(1)
			r.turns.Write(1, s1)
			r.finishAfterTicks(1)
			got := rec.snapshot()
			if got.started[1] != strconv.Itoa(tc.in) {
				t.Fatalf("recording at %s Hz; want the caller's %d", got.started[1], tc.in)
			}
			var audio []int16
			for _, f := range got.bot {
				audio = append(audio, f...)
			}
			if n := len(audio) / len(got.bot); n < tc.in/50-2 || n > tc.in/50+2 {
				t.Fatalf("%d samples a bot frame; want %d", n, tc.in/50)
			}
			checkTone(t, audio[tc.in/10:tc.in*6/10], tc.in)
		})
	}
}
