package call

import (
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/event"
)

// Recorder records calls (pipeline/record.Recorder). Voice.Recorder nil:
// calls are not recorded.
type Recorder interface {
	// Start opens the recording of a call that starts at start, its audio
	// (the caller's, and the bot's as the call gives it) at rate.
	Start(sessionID string, rate int, start time.Time) (Recording, error)
}

// Recording is one call's recording. Its methods are called on the call's
// audio paths and must not block; they keep no slice given to them. Calls
// after Close do nothing.
type Recording interface {
	// Caller is caller audio that arrived at at.
	Caller(pcm []int16, at time.Time)
	// Bot is the frame-th bot frame sent (counting from 1), sent at at.
	Bot(frame int64, pcm []int16, at time.Time)
	// Cut says that the bot frames after the played-th, up to the sent-th,
	// were never heard: a barge-in cleared them.
	Cut(played, sent int64)
	// Heard is a caller's turn, recognised or typed at at; from and to are
	// when its speech began and ended (zero for a typed turn).
	Heard(at time.Time, turn int64, source event.Source, text string, from, to time.Time)
	// Spoke is the bot's reply to turn, finished at at: what was heard of
	// it, in frames first to last (none when last < first), and whether
	// it was cut off.
	Spoke(at time.Time, turn int64, text string, first, last int64, cut bool)
	// Close ends the recording, once the call has ended.
	Close() error
}

// recording is a call's side of its Recording: it decodes the bot's
// frames back to PCM at the recording's rate (the CPU this costs is spent
// only on recorded calls). Its methods do nothing on a nil recording: the
// call is not recorded.
type recording struct {
	r   Recording
	c   *Call
	dec media.Decoder    // the pacer's goroutine's
	up  *media.Resampler // the decoder's rate to the caller's; nil when they agree
	res []int16          // up's output
	// began is when the caller's utterance being heard began, in the
	// recording's time; the listening loop's.
	began time.Time
}

// startRecording opens the call's recording, if calls are recorded. A
// recording that cannot start is logged and the call goes on without it.
func (c *Call) startRecording(start time.Time) {
	if c.v.Recorder == nil {
		return
	}
	dec, err := c.media.Out.NewDecoder(c.media.InRate)
	var up *media.Resampler
	if err == nil && dec.Rate() != c.media.InRate {
		up, err = media.NewResampler(dec.Rate(), c.media.InRate)
	}
	var r Recording
	if err == nil {
		r, err = c.v.Recorder.Start(c.session, c.media.InRate, start)
	}
	if err != nil {
		c.log.Error("the call is not recorded", "err", err)
		return
	}
	c.rec.Store(&recording{r: r, c: c, dec: dec, up: up})
}

// stopRecording closes the recording once Run's goroutines have ended.
func (c *Call) stopRecording() {
	if r := c.rec.Swap(nil); r != nil {
		if err := r.r.Close(); err != nil {
			c.log.Error("recording", "err", err)
		}
	}
}

func (r *recording) caller(pcm []int16, at time.Time) {
	if r != nil {
		r.r.Caller(pcm, at)
	}
}

// bot records the n-th frame sent, on the pacer's goroutine.
func (r *recording) bot(n int64, frame []byte) {
	if r == nil {
		return
	}
	at := r.c.clk.Now()
	pcm, err := r.dec.Decode(frame)
	if err != nil {
		return // not ours to judge: the frame went out as it was
	}
	if r.up != nil {
		r.res = r.up.Process(pcm, r.res[:0])
		pcm = r.res
	}
	r.r.Bot(n, pcm, at)
}

// speechStarted notes when the utterance the VAD has just started began:
// onset before the end of the frame that started it, which arrived at at
// (and the recording placed from there).
func (r *recording) speechStarted(at time.Time, onset time.Duration) {
	if r != nil {
		r.began = at.Add(media.FrameDuration - onset)
	}
}

// heard records a caller's turn; voicedEnd is zero for a typed one.
func (r *recording) heard(turn int64, source event.Source, text string, voicedEnd time.Time) {
	if r == nil {
		return
	}
	from, to := r.began, voicedEnd.Add(media.FrameDuration) // as speechStarted
	if voicedEnd.IsZero() {
		from, to = time.Time{}, time.Time{}
	}
	r.r.Heard(r.c.clk.Now(), turn, source, text, from, to)
}

// spoke records what was heard of the reply, played frames in; on the
// speaker's goroutine, once the cut reply's frames have been flushed.
func (r *recording) spoke(rep *reply, heard string, played int64, cut bool) {
	if r == nil {
		return
	}
	first, last := int64(1), int64(0)
	if len(rep.parts) > 0 {
		first, last = rep.parts[0].start+1, min(played, rep.parts[len(rep.parts)-1].end)
	}
	if cut {
		r.r.Cut(played, r.c.sent.Load())
	}
	r.r.Spoke(r.c.clk.Now(), rep.turn, heard, first, last, cut)
}
