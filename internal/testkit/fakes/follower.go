package fakes

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
)

// Follower is a fake session.Hub: sinks follow sessions, and the test
// publishes events to them, which they get in their wire form (with an id
// for a stored event, as the session's log gives them). Deliveries are
// serialised, as the Hub's one goroutine makes them, and run on the
// publisher's goroutine.
type Follower struct {
	// Err, if set, is what Follow fails with.
	Err error

	deliver sync.Mutex // held while sinks are called: one delivery at a time
	mu      sync.Mutex
	sinks   map[string][]session.Sink
	seq     int64 // of the ids of stored events
	changes changes
}

// Follow implements call.Follower: sink gets id's events until stop.
func (f *Follower) Follow(ctx context.Context, id string, sink session.Sink) (stop func(), err error) {
	if f.Err != nil {
		return nil, f.Err
	}
	f.mu.Lock()
	if f.sinks == nil {
		f.sinks = make(map[string][]session.Sink)
	}
	f.sinks[id] = append(f.sinks[id], sink)
	f.mu.Unlock()
	f.changes.changed()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			s := f.sinks[id]
			if i := slices.Index(s, sink); i >= 0 {
				f.sinks[id] = slices.Delete(s, i, i+1)
			}
			f.mu.Unlock()
			f.changes.changed()
		})
	}, nil
}

// Following is how many sinks follow session id.
func (f *Follower) Following(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sinks[id])
}

// WaitFollowing waits until n sinks follow session id.
func (f *Follower) WaitFollowing(tb testing.TB, id string, n int) {
	tb.Helper()
	f.changes.wait(tb, fmt.Sprintf("%d followers of %s", n, id), func() bool { return f.Following(id) == n })
}

// Publish delivers ev to the sinks of session id as a stored event: its
// stored form with a new log id first (event.WithID). It returns the
// wire form.
func (f *Follower) Publish(id string, ev event.Event) []byte {
	f.mu.Lock()
	f.seq++
	logID := fmt.Sprintf("1700000000000-%d", f.seq)
	f.mu.Unlock()
	wire := event.WithID(logID, event.Marshal(ev))
	f.DeliverWire(id, wire)
	return wire
}

// DeliverWire delivers wire, as it is, to the sinks of session id: an
// ephemeral event (no id), or bytes that are no event at all. The event
// before it is not known (prev ""): the fake has no log.
func (f *Follower) DeliverWire(id string, wire []byte) {
	f.deliver.Lock()
	defer f.deliver.Unlock()
	for _, s := range f.following(id) {
		s.Deliver("", wire)
	}
}

// Resync tells the sinks of session id that events may have been missed.
func (f *Follower) Resync(id string) {
	f.deliver.Lock()
	defer f.deliver.Unlock()
	for _, s := range f.following(id) {
		s.Resync()
	}
}

func (f *Follower) following(id string) []session.Sink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sinks[id])
}
