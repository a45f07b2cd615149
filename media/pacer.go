package media

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	pacerUnderruns = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "media", Name: "pacer_underruns_total",
		Help: "20 ms ticks with no frame ready in the middle of an utterance.",
	})
	pacerDropped = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "media", Name: "pacer_dropped_frames_total",
		Help: "Outbound frames dropped because the pacer's queue was full (oldest first).",
	})
)

// PacerConfig tunes a Pacer. A zero field means the default in its comment.
type PacerConfig struct {
	Lead  int // frames sent at once when an utterance starts, to fill the client's jitter buffer; default 3
	Queue int // frames held (oldest dropped past it); default 500 (10 s)
}

// Pacer sends one 20 ms frame per 20 ms tick, so the client receives audio
// at real time rather than in bursts, however fast it was synthesised.
// Flush drops what is queued at once (barge-in). F is what a frame is to
// its sender: an encoded packet, or a packet with the PCM it came from
// (the call's echo gate learns from what leaves, when it leaves).
type Pacer[F any] struct {
	cfg  PacerConfig
	send func(frame F) error

	mu        sync.Mutex
	q         []F // ring
	head, n   int
	active    bool // between the first Push of an utterance and End
	ended     bool
	lead      int // frames still to send at once
	underruns int
	dropped   int
	kick      chan struct{}
}

// NewPacer returns a Pacer that calls send for each frame, from Run's
// goroutine only.
func NewPacer[F any](cfg PacerConfig, send func(frame F) error) *Pacer[F] {
	if cfg.Lead <= 0 {
		cfg.Lead = 3
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 500
	}
	return &Pacer[F]{cfg: cfg, send: send, q: make([]F, cfg.Queue), kick: make(chan struct{}, 1)}
}

// Push queues a frame. Past the queue's bound the oldest frame is dropped
// and counted: late audio is worth less than current audio.
func (p *Pacer[F]) Push(frame F) {
	p.mu.Lock()
	if !p.active {
		p.active, p.ended, p.lead = true, false, p.cfg.Lead
	}
	var none F
	if p.n == len(p.q) {
		p.q[p.head] = none
		p.head = (p.head + 1) % len(p.q)
		p.n--
		p.dropped++
		pacerDropped.Inc()
	}
	p.q[(p.head+p.n)%len(p.q)] = frame
	p.n++
	lead := p.lead > 0
	p.mu.Unlock()
	if lead {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// End marks the end of an utterance: once its frames are sent, empty
// ticks are silence, not underruns.
func (p *Pacer[F]) End() {
	p.mu.Lock()
	p.ended = true
	if p.n == 0 {
		p.active = false
	}
	p.mu.Unlock()
}

// Flush drops every queued frame now and ends the utterance.
func (p *Pacer[F]) Flush() {
	p.mu.Lock()
	clear(p.q)
	p.head, p.n, p.active, p.ended, p.lead = 0, 0, false, false, 0
	p.mu.Unlock()
}

// Stats returns the underruns and dropped frames counted so far.
func (p *Pacer[F]) Stats() (underruns, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.underruns, p.dropped
}

// Queued is the number of frames waiting.
func (p *Pacer[F]) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Run sends frames until ctx ends or send fails, one per 20 ms.
func (p *Pacer[F]) Run(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	return p.RunTicks(ctx, t.C)
}

// RunTicks is Run with the ticks given, for tests and for callers that
// share one clock among many pacers.
func (p *Pacer[F]) RunTicks(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
			// The lead of a new utterance goes out at once.
			for {
				f, ok := p.pop(true)
				if !ok {
					break
				}
				if err := p.send(f); err != nil {
					return err
				}
			}
		case <-ticks:
			if f, ok := p.pop(false); ok {
				if err := p.send(f); err != nil {
					return err
				}
			}
		}
	}
}

// pop takes the next frame: with lead, only while lead frames remain.
func (p *Pacer[F]) pop(lead bool) (F, bool) {
	var none F
	p.mu.Lock()
	defer p.mu.Unlock()
	if lead {
		if p.lead == 0 {
			return none, false
		}
	}
	if p.n == 0 {
		if p.active && !p.ended && !lead {
			p.underruns++
			pacerUnderruns.Inc()
		}
		if p.ended {
			p.active = false
		}
		return none, false
	}
	if lead {
		p.lead--
	}
	f := p.q[p.head]
	p.q[p.head] = none
	p.head = (p.head + 1) % len(p.q)
	p.n--
	if p.n == 0 && p.ended {
		p.active = false
	}
	return f, true
}
