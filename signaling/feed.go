package signaling

import (
	"context"
	"time"

	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
)

var replayed = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "ws", Name: "replayed_events_total",
	Help: "Events sent from the session log to resuming clients.",
})

const (
	replayPage = 256
	// Live events held while a replay runs; past this the replay simply
	// runs once more from the last id sent.
	maxPending = 1024
)

// Feed is a session's events on one socket: the stored ones after the
// client's last, read from the log, then the live ones, each once and in
// order. It is the session.Sink that the Hub delivers to.
//
// A feed starts replaying: live events wait until the log has been read
// up to them. The replay runs on the socket's writer, so a long one needs
// no queue space. Deliver and Resync are safe from any goroutine.
type Feed struct {
	sock  *Socket
	store *session.Store
	id    string
	// encode turns a stored event's wire form into the protocol's frames;
	// nil sends it as it is (the Parley protocol's own form).
	encode func(wire []byte) [][]byte

	mu        sync.Mutex
	lastID    string // the newest stored event queued for the client
	replaying bool   // a replay is queued or running: live events wait in pending
	pending   [][]byte
	overflow  bool
	lastTouch time.Time
	stop      func()
}

// ID is the session's id.
func (f *Feed) ID() string { return f.id }

// Deliver implements session.Sink; it runs on the Hub's goroutine.
func (f *Feed) Deliver(wire []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.replaying {
		if len(f.pending) >= maxPending {
			f.overflow = true
			return
		}
		f.pending = append(f.pending, wire)
		return
	}
	if id := event.IDOf(wire); id != "" {
		if f.lastID != "" && session.CompareIDs(id, f.lastID) <= 0 {
			return // already sent (replay and live overlap)
		}
		f.lastID = id
	}
	f.send(wire)
}

// send queues an event's frames.
func (f *Feed) send(wire []byte) {
	if f.encode == nil {
		f.sock.Send(wire)
		return
	}
	for _, b := range f.encode(wire) {
		f.sock.Send(b)
	}
}

// write writes an event's frames on the writer.
func (f *Feed) write(w Writer, wire []byte) error {
	if f.encode == nil {
		return w.WriteText(wire)
	}
	for _, b := range f.encode(wire) {
		if err := w.WriteText(b); err != nil {
			return err
		}
	}
	return nil
}

// Resync implements session.Sink: the Hub may have missed events, so read
// the log again from the last id sent.
func (f *Feed) Resync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.replaying {
		f.replaying = true
		f.sock.Do(f.replay)
	}
}

// Close stops the live delivery. Idempotent.
func (f *Feed) Close() {
	if f.stop != nil {
		f.stop()
	}
}

// replay sends the stored events after the last id sent, page by page,
// then the live events that arrived meanwhile, and switches the feed to
// live only once it has caught up.
func (f *Feed) replay(w Writer) error {
	for {
		if err := f.replayLog(w); err != nil {
			return err
		}
		for {
			f.mu.Lock()
			pend, overflow := f.pending, f.overflow
			f.pending, f.overflow = nil, false
			if len(pend) == 0 && !overflow {
				f.replaying = false
				f.mu.Unlock()
				return nil
			}
			f.mu.Unlock()
			if overflow {
				break // events were dropped from pending: read the log again
			}
			for _, wire := range pend {
				if !f.advance(event.IDOf(wire)) {
					continue
				}
				if err := f.write(w, wire); err != nil {
					return err
				}
			}
		}
	}
}

// advance records id as sent and reports whether it is new; events without
// an id are always new.
func (f *Feed) advance(id string) bool {
	if id == "" {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastID != "" && session.CompareIDs(id, f.lastID) <= 0 {
		return false
	}
	f.lastID = id
	return true
}

// replayLog sends the stored events after the last id sent.
func (f *Feed) replayLog(w Writer) error {
	ctx := f.sock.Context()
	for {
		f.mu.Lock()
		after := f.lastID
		f.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		evs, err := f.store.Range(rctx, f.id, after, replayPage)
		cancel()
		if err != nil {
			f.sock.Log().Warn("replay failed", "err", err)
			if ctx.Err() != nil {
				return err
			}
			// Tell the client, and carry on live; the next Resync retries.
			return f.write(w, event.Marshal(event.Error{Code: event.CodeInternal, Message: "missed events could not be read; reconnect to receive them"}))
		}
		for _, ev := range evs {
			if !f.advance(ev.ID) {
				continue
			}
			if err := f.write(w, ev.Wire); err != nil {
				return err
			}
			replayed.Inc()
		}
		if len(evs) < replayPage {
			return nil
		}
	}
}

// Touch refreshes the session's expiry now and then while the socket is
// open (at a pong, say), so a connected session does not expire.
func (f *Feed) Touch() {
	if time.Since(f.lastTouch) < f.store.TTL()/4 {
		return
	}
	f.lastTouch = time.Now()
	ctx, cancel := context.WithTimeout(f.sock.Context(), 2*time.Second)
	defer cancel()
	if err := f.store.Touch(ctx, f.id); err != nil {
		f.sock.Log().Warn("refresh session expiry", "err", err)
	}
}
