package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sink receives a session's live events on this replica. Both calls come
// from the Hub's one goroutine and must not block.
type Sink interface {
	// Deliver hands over one event in its wire form; stored events carry
	// an "id", ephemeral ones do not. The slice must not be modified.
	Deliver(wire []byte)
	// Resync says that events may have been missed (the Pub/Sub
	// connection was re-established): read the log from the last id seen.
	Resync()
}

// Hub delivers the events published for a session to the sinks that
// follow it on this replica, over one Pub/Sub connection for the whole
// replica: a channel is subscribed while at least one local sink follows
// the session.
type Hub struct {
	store *Store
	log   *slog.Logger
	ps    *redis.PubSub

	mu   sync.Mutex
	subs map[string]*follow // by channel
}

type follow struct {
	sinks     map[Sink]struct{}
	ready     chan struct{} // closed at the first subscribe confirmation
	confirmed bool
}

// NewHub returns a Hub for the sessions of store. Run must be running for
// Follow to return.
func NewHub(rdb redis.UniversalClient, store *Store, log *slog.Logger) *Hub {
	return &Hub{
		store: store,
		log:   log,
		ps:    rdb.Subscribe(context.Background()),
		subs:  make(map[string]*follow),
	}
}

// Follow starts delivering the session's events to sink and returns once
// Redis has confirmed the subscription, so that an event published after
// Follow returns is delivered. The caller reads the log for what came
// before. stop ends the delivery; it is idempotent.
func (h *Hub) Follow(ctx context.Context, id string, sink Sink) (stop func(), err error) {
	ch := h.store.Channel(id)
	h.mu.Lock()
	f := h.subs[ch]
	if f == nil {
		f = &follow{sinks: make(map[Sink]struct{}), ready: make(chan struct{})}
		h.subs[ch] = f
		// Sent under the lock so that SUBSCRIBE and UNSUBSCRIBE of one
		// channel reach Redis in the order of our own bookkeeping.
		if err := h.ps.Subscribe(ctx, ch); err != nil {
			delete(h.subs, ch)
			h.mu.Unlock()
			return nil, fmt.Errorf("session: subscribe: %w", err)
		}
	}
	f.sinks[sink] = struct{}{}
	ready := f.ready
	h.mu.Unlock()

	stop = func() { h.unfollow(ch, sink) }
	select {
	case <-ready:
		return stop, nil
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

func (h *Hub) unfollow(ch string, sink Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.subs[ch]
	if f == nil {
		return
	}
	if _, ok := f.sinks[sink]; !ok {
		return
	}
	delete(f.sinks, sink)
	if len(f.sinks) == 0 {
		delete(h.subs, ch)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := h.ps.Unsubscribe(ctx, ch); err != nil {
			h.log.Warn("unsubscribe failed", "channel", ch, "err", err)
		}
		cancel()
	}
}

// Run receives from the replica's Pub/Sub connection and dispatches to the
// sinks. It returns when ctx is cancelled.
func (h *Hub) Run(ctx context.Context) error {
	go func() { // ends when Run's ctx ends: closing the PubSub unblocks Receive
		<-ctx.Done()
		h.ps.Close()
	}()
	var sinks []Sink
	for {
		msg, err := h.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return nil
			}
			// go-redis reconnects and resubscribes on the next Receive; the
			// confirmations that follow trigger a resync.
			h.log.Warn("pubsub receive failed; reconnecting", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			sinks = h.sinksOf(m.Channel, sinks[:0], false)
			if len(sinks) == 0 {
				continue
			}
			payload := []byte(m.Payload)
			for _, s := range sinks {
				s.Deliver(payload)
			}
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			// A second confirmation for a channel means the connection was
			// re-established: events in the gap were not delivered.
			sinks = h.sinksOf(m.Channel, sinks[:0], true)
			for _, s := range sinks {
				s.Resync()
			}
		}
		clear(sinks)
	}
}

// sinksOf copies the channel's sinks into buf. With confirm, it marks the
// channel confirmed and returns the sinks only if it already was.
func (h *Hub) sinksOf(ch string, buf []Sink, confirm bool) []Sink {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.subs[ch]
	if f == nil {
		return buf
	}
	if confirm && !f.confirmed {
		f.confirmed = true
		close(f.ready)
		return buf
	}
	for s := range f.sinks {
		buf = append(buf, s)
	}
	return buf
}
