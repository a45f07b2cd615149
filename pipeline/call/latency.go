package call

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/pipeline/event"
)

var (
	droppedInput = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "dropped_input_frames_total",
		Help: "Caller audio frames dropped because a call's listening loop fell behind (oldest first).",
	})
	latencyBuckets = []float64{.01, .025, .05, .1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10}
	asrLatency     = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "asr_seconds", Buckets: latencyBuckets,
		Help: "The end-of-turn decision to the final transcript.",
	})
	llmLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "llm_first_token_seconds", Buckets: latencyBuckets,
		Help: "A spoken turn's submission to the first reply text reaching the call.",
	})
	ttsLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "tts_first_audio_seconds", Buckets: latencyBuckets,
		Help: "The first sentence handed to the synthesiser to its first audio frame leaving the server.",
	})
	voiceLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "voice_to_voice_seconds", Buckets: latencyBuckets,
		Help: "The end of the caller's last voiced audio to the first frame of the bot's audio leaving the server: what the caller waits, but for the network.",
	})
	endpointLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "endpoint_seconds", Buckets: latencyBuckets,
		Help: "The end of the caller's last voiced audio to the end-of-turn decision (the silence waited for).",
	})
	serverLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "call", Name: "server_seconds", Buckets: latencyBuckets,
		Help: "The end-of-turn decision (or a typed turn's arrival) to the first frame of the bot's audio leaving the server.",
	})
	fillers = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "fillers_total",
		Help: "Fillers said while a turn waited for a tool.",
	})
	bargeIns = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "call", Name: "barge_ins_total",
		Help: "Replies cut off by the caller speaking over them.",
	})
)

// turnTiming is when the steps of a turn happened, for its latency event.
type turnTiming struct {
	voicedEnd   time.Time     // the end of the caller's last voiced audio, as it arrived; zero for a typed turn
	silence     time.Duration // the silence waited for after it, in audio time
	why         string        // the rule that chose the silence waited for
	decided     time.Time     // the end-of-turn decision, or a typed turn's arrival
	transcribed time.Time     // zero for a typed turn
	submitted   time.Time
	firstText   time.Time
	ttsStart    time.Time
}

// mark records a step's time for turn, once.
func (c *Call) mark(turn int64, step func(*turnTiming) *time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tt := c.timing[turn]
	if tt == nil {
		tt = &turnTiming{}
		c.timing[turn] = tt
	}
	if p := step(tt); p.IsZero() {
		*p = c.clk.Now()
	}
}

// expectFirst says that the frame numbered frame (counting frames sent)
// is the first of turn's audio: its sending gives the latency figures.
func (c *Call) expectFirst(turn, frame int64) {
	c.mu.Lock()
	c.firstTurn = turn
	c.mu.Unlock()
	c.first.Store(frame)
}

// firstAudio sends the latency event of the turn whose first frame, the
// frame-th sent, is leaving now; on the pacer's goroutine.
func (c *Call) firstAudio(frame int64) {
	now := c.clk.Now()
	c.mu.Lock()
	turn := c.firstTurn
	tt := c.timing[turn]
	delete(c.timing, turn)
	c.mu.Unlock()
	c.first.CompareAndSwap(frame, 0)
	if tt == nil || tt.decided.IsZero() || tt.firstText.IsZero() || tt.ttsStart.IsZero() {
		return
	}
	ev := event.Latency{Turn: turn,
		Server:        ms(now.Sub(tt.decided)),
		LLMFirstToken: ms(tt.firstText.Sub(tt.submitted)),
		TTSFirstAudio: ms(now.Sub(tt.ttsStart)),
	}
	llmLatency.Observe(tt.firstText.Sub(tt.submitted).Seconds())
	ttsLatency.Observe(now.Sub(tt.ttsStart).Seconds())
	serverLatency.Observe(now.Sub(tt.decided).Seconds())
	if !tt.voicedEnd.IsZero() {
		// Voice to voice from the audio's arrival: it holds the silence
		// and any wait of the audio to be heard (a loaded server).
		asr, v2v, ep := ms(tt.transcribed.Sub(tt.decided)), ms(now.Sub(tt.voicedEnd)), ms(tt.silence)
		ev.ASR, ev.VoiceToVoice, ev.Endpoint, ev.EndpointWhy = &asr, &v2v, &ep, tt.why
		voiceLatency.Observe(now.Sub(tt.voicedEnd).Seconds())
		endpointLatency.Observe(tt.silence.Seconds())
	}
	c.out.SendEvent(ev)
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
