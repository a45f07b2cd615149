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
// no queue space. Live events may come out of order (this replica's own
// scripts hand theirs over directly, other replicas' come by Pub/Sub):
// one whose previous event (prev) is newer than the last sent means a
// gap, and the feed reads the log. Deliver and Resync are safe from any
// goroutine.
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
	pending   []live
	overflow  bool
	// degraded: this replay could not read the log, so it does not read
	// it again at a gap (it would find it as broken); until it ends.
	degraded  bool
	lastTouch time.Time
	stop      func()
}

// live is a live event waiting for a replay to end.
type live struct {
	prev string
	wire []byte
}

// ID is the session's id.
func (f *Feed) ID() string { return f.id }

// Deliver implements session.Sink; it runs on the Hub's goroutine or a
// script's.
func (f *Feed) Deliver(prev string, wire []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.replaying {
		f.holdLocked(prev, wire)
		return
	}
	switch f.nextLocked(prev, event.IDOf(wire)) {
	case stale:
		return // already sent (replay and live overlap)
	case gap:
		// An event before this one has not come yet: the log has it.
		f.holdLocked(prev, wire)
		f.replaying = true
		f.sock.Do(f.replay)
		return
	}
	f.send(wire)
}

func (f *Feed) holdLocked(prev string, wire []byte) {
	if len(f.pending) >= maxPending {
		f.overflow = true
		return
	}
	f.pending = append(f.pending, live{prev, wire})
}

// What a live event is to the feed.
const (
	fresh = iota // the next to send: sent, and the last id now
	stale        // sent already
	gap          // newer than the next: an event between is missing
)

// nextLocked places event id (prev before it) against the last id sent,
// and makes it the last id when it is fresh. An event without an id
// (ephemeral) is always fresh; with prev unknown ("") an event newer than
// the last is.
func (f *Feed) nextLocked(prev, id string) int {
	if id == "" {
		return fresh
	}
	last := f.lastID
	if last == "" {
		last = "0-0"
	}
	if session.CompareIDs(id, last) <= 0 {
		return stale
	}
	// prev older than the last sent is fine too: a resume from an id the
	// log does not hold sends what comes after it.
	if prev != "" && !f.degraded && session.CompareIDs(prev, last) > 0 {
		return gap
	}
	f.lastID = id
	return fresh
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
				f.replaying, f.degraded = false, false
				f.mu.Unlock()
				return nil
			}
			f.mu.Unlock()
			if overflow {
				break // events were dropped from pending: read the log again
			}
			if again, err := f.drain(w, pend); again || err != nil {
				if err != nil {
					return err
				}
				break // a gap: read the log again
			}
		}
	}
}

// drain writes the live events held during a replay. At a gap it holds
// the rest again, ahead of what came since, and reports that the log
// must be read again.
func (f *Feed) drain(w Writer, pend []live) (again bool, err error) {
	for i, ev := range pend {
		f.mu.Lock()
		n := f.nextLocked(ev.prev, event.IDOf(ev.wire))
		if n == gap {
			f.pending = append(pend[i:len(pend):len(pend)], f.pending...)
			f.mu.Unlock()
			return true, nil
		}
		f.mu.Unlock()
		if n == stale {
			continue
		}
		if err := f.write(w, ev.wire); err != nil {
			return false, err
		}
	}
	return false, nil
}

// advance records id, read from the log, as sent and reports whether it
// is new: the log is in order, so no gap is possible.
func (f *Feed) advance(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nextLocked("", id) == fresh
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
			f.mu.Lock()
			f.degraded = true
			f.mu.Unlock()
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
