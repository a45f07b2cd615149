package call

import (
	"context"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/speech"
)

// listen: caller audio → the recogniser's rate → VAD → recogniser → a
// user turn. It returns when ctx ends.
func (c *Call) listen(ctx context.Context, rec speech.Recognizer, down *media.Resampler) {
	vad := media.NewVAD(c.cfg.VAD)
	preMax := int(c.cfg.PreRoll.Seconds() * float64(c.v.ASR.SampleRate()))
	var pre, buf []int16
	for {
		var frame []int16
		select {
		case <-ctx.Done():
			return
		case frame = <-c.in:
		}
		if down != nil {
			buf = down.Process(frame, buf[:0])
		} else {
			buf = append(buf[:0], frame...)
		}
		ev := vad.Process(buf)
		c.caller.Store(vad.Speaking())
		switch {
		case ev == media.VADSpeechStart:
			c.bargeIn(ctx)
			c.write(rec, pre) // the frames before the start are speech too
			c.write(rec, buf)
			pre = pre[:0]
		case vad.Speaking() || ev == media.VADSpeechEnd:
			c.write(rec, buf)
		default:
			pre = append(pre, buf...)
			if over := len(pre) - preMax; over > 0 {
				pre = append(pre[:0], pre[over:]...)
			}
		}
		if ev == media.VADSpeechEnd {
			c.endUtterance(ctx, rec, vad.TrailingSilence())
		}
	}
}

// Interrupt cuts off the reply now, as the caller's voice would (the
// client asked to interrupt).
func (c *Call) Interrupt(ctx context.Context) { c.bargeIn(ctx) }

// bargeIn cuts off the reply being written or spoken: the caller has
// spoken for the VAD's start duration. Audio stops at once; the speaker
// then reports what was heard.
func (c *Call) bargeIn(ctx context.Context) {
	if !c.active.Load() {
		return
	}
	bargeIns.Inc()
	// Under c.mu, as the speaker's pushes are: no frame of the cut turn
	// is queued after the flush.
	c.mu.Lock()
	c.cut.Store(c.turn.Load())
	if c.stopSpeech != nil {
		c.stopSpeech()
	}
	c.pacer.Flush()
	c.mu.Unlock()
	if f, ok := c.out.(Flusher); ok {
		f.Flush() // the client's queue too, at once
	}
	c.first.Store(0) // its first frame may have been flushed: no latency figure
	if err := c.v.Turns.Interrupt(ctx, c.session); err != nil {
		c.log.Warn("interrupt failed", "err", err)
	}
	c.post(callEvent{bargeIn: c.turn.Load()})
}

func (c *Call) write(rec speech.Recognizer, pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	if err := rec.Write(pcm); err != nil {
		c.log.Warn("recogniser dropped audio", "err", err)
	}
}

// endUtterance turns the utterance the VAD just ended into a user turn.
// silence is how long the VAD waited after the last voiced audio.
func (c *Call) endUtterance(ctx context.Context, rec speech.Recognizer, silence time.Duration) {
	now := c.clk.Now()
	tt := turnTiming{voicedEnd: now.Add(-silence), decided: now}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	text, err := rec.End(ectx)
	tt.transcribed = c.clk.Now()
	if err != nil {
		c.log.Warn("recognition failed", "err", err)
		c.out.SendEvent(event.Error{Code: event.CodeUpstream, Message: "speech recognition failed: " + err.Error()})
		c.post(callEvent{apology: true})
		return
	}
	if text == "" {
		return // a noise, not words
	}
	asrLatency.Observe(tt.transcribed.Sub(tt.decided).Seconds())
	if _, err := c.submit(ctx, text, event.SourceVoice, tt); err != nil {
		if te, ok := err.(interface{ Event() event.Error }); ok {
			c.out.SendEvent(te.Event())
		} else {
			c.out.SendEvent(event.Error{Code: event.CodeInternal, Message: "the turn could not be submitted"})
		}
	}
}
