package media

import (
	"context"
	"sync"
	"testing"
	"time"
)

// pacerRig drives a Pacer with hand-made ticks and records what it sent.
type pacerRig struct {
	p     *Pacer[[]byte]
	ticks chan time.Time
	mu    sync.Mutex
	sent  []byte // the first byte of each frame sent
	got   chan struct{}
	stop  func()
}

func newRig(t *testing.T, cfg PacerConfig) *pacerRig {
	r := &pacerRig{ticks: make(chan time.Time), got: make(chan struct{}, 1000)}
	r.p = NewPacer(cfg, func(f []byte) error {
		r.mu.Lock()
		r.sent = append(r.sent, f[0])
		r.mu.Unlock()
		r.got <- struct{}{}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.p.RunTicks(ctx, r.ticks); close(done) }()
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	return r
}

// tick delivers one tick and waits until Run has taken it.
func (r *pacerRig) tick() { r.ticks <- time.Time{} }

func (r *pacerRig) waitSent(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d frames sent", i, n)
		}
	}
}

func (r *pacerRig) waitUnderruns(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, _ := r.p.Stats()
		if u >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d underruns counted, want %d", u, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *pacerRig) sentFrames() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.sent...)
}

func TestPacerSendsLeadThenOnePerTick(t *testing.T) {
	r := newRig(t, PacerConfig{Lead: 2})
	for i := byte(1); i <= 6; i++ {
		r.p.Push([]byte{i})
	}
	r.waitSent(t, 2) // the lead goes at once
	if got := r.sentFrames(); len(got) != 2 {
		t.Fatalf("sent %v before any tick, want the 2 lead frames", got)
	}
	for i := 0; i < 4; i++ {
		r.tick()
		r.waitSent(t, 1)
		if got := r.sentFrames(); len(got) != 3+i {
			t.Fatalf("after %d ticks sent %v: want exactly one more per tick", i+1, got)
		}
	}
	if got := r.sentFrames(); string(got) != "\x01\x02\x03\x04\x05\x06" {
		t.Fatalf("order %v", got)
	}
}

func TestPacerCountsUnderrunsOnlyMidUtterance(t *testing.T) {
	r := newRig(t, PacerConfig{Lead: 1})
	r.tick() // idle: not an underrun
	r.tick()
	r.p.Push([]byte{1})
	r.waitSent(t, 1)
	r.tick() // mid-utterance and nothing queued: an underrun
	r.tick()
	// tick returns once Run has the tick, not once it has looked at the
	// queue: the next frame must come after both looks.
	r.waitUnderruns(t, 2)
	r.p.Push([]byte{2})
	r.p.End()
	r.tick()
	r.waitSent(t, 1)
	r.tick() // after End: silence
	r.tick()
	r.stop()
	if u, _ := r.p.Stats(); u != 2 {
		t.Fatalf("%d underruns, want 2", u)
	}
}

func TestPacerDropsOldestAndFlushes(t *testing.T) {
	r := newRig(t, PacerConfig{Lead: 1, Queue: 3})
	r.stop() // nothing sent: look at the queue only
	for i := byte(1); i <= 5; i++ {
		r.p.Push([]byte{i})
	}
	if _, d := r.p.Stats(); d != 2 || r.p.Queued() != 3 {
		t.Fatalf("dropped %d, queued %d; want 2 and 3", d, r.p.Queued())
	}
	if f, _ := r.p.pop(false); f[0] != 3 {
		t.Fatalf("oldest kept is %d, want 3 (1 and 2 dropped)", f[0])
	}
	r.p.Flush()
	if _, ok := r.p.pop(false); r.p.Queued() != 0 || ok {
		t.Fatal("frames survived a flush")
	}
}
