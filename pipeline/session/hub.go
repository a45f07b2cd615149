package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/pipeline/event"
)

// Sink receives a session's live events on this replica. Both calls come
// from one of the Hub's receiving goroutines, or from the goroutine whose
// script stored the events (local delivery), and must not block. Calls
// for one session may come from several goroutines at once.
type Sink interface {
	// Deliver hands over one event in its wire form; stored events carry
	// an "id", ephemeral ones do not. prev is the id of the log's event
	// just before it ("0-0" for none), or "" when unknown (an ephemeral
	// event): a sink whose last event is older than prev has missed one.
	// Events of one session may come out of order (two paths: this
	// replica's own scripts and Pub/Sub). The slice must not be modified.
	Deliver(prev string, wire []byte)
	// Resync says that events may have been missed (the Pub/Sub
	// connection was re-established): read the log from the last id seen.
	Resync()
}

// Hub delivers the events published for a session to the sinks that
// follow it on this replica. A channel is subscribed while at least one
// local sink follows the session. With classic Pub/Sub the replica has one
// connection for all channels; with sharded Pub/Sub on a Redis Cluster it
// has one per master node that holds a followed session, since a node
// accepts SSUBSCRIBE only for its own slots.
type Hub struct {
	rdb   redis.UniversalClient
	store *Store
	log   *slog.Logger

	mu     sync.Mutex
	subs   map[string]*follow  // by channel
	shards map[string]*hubConn // by master address ("" without a cluster)
	runCtx context.Context     // Run's, once it runs; nil before
	wg     sync.WaitGroup      // the receiving goroutines
	// lost: channels whose events a script of this replica may have
	// stored without handing them over (its reply lost); their sinks are
	// resynced once Redis answers again (resyncLost).
	lost map[string]struct{}
}

// follow is one followed channel. Its fields are under Hub.mu, except
// countErr: written before counted is closed, read after.
type follow struct {
	sinks     sinkSet
	conn      *hubConn
	ready     chan struct{} // closed at the first subscribe confirmation
	confirmed bool
	// counted is closed once the follow is counted in the session's meta
	// hash (follow.lua), so that other replicas' scripts publish to us;
	// countErr says it failed.
	counted  chan struct{}
	countErr error
}

// closedChan stands for ready and counted once both are closed: a session
// followed for hours keeps no channel of its own (an idle replica holds
// thousands of follows).
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// settleLocked lets go of f's channels once both are closed; waiters
// took their own copies.
func (f *follow) settleLocked() {
	f.ready, f.counted = closedChan, closedChan
}

// sinkSet is a follow's sinks: nearly always one (a session's socket), so
// that one is held without a map.
type sinkSet struct {
	one  Sink
	more map[Sink]struct{}
}

func (s *sinkSet) add(k Sink) {
	switch {
	case s.one == nil && len(s.more) == 0:
		s.one = k
	case s.one == k:
	default:
		if s.more == nil {
			s.more = make(map[Sink]struct{})
		}
		s.more[k] = struct{}{}
	}
}

// remove reports whether k was in the set.
func (s *sinkSet) remove(k Sink) bool {
	if s.one != nil && s.one == k {
		s.one = nil
		return true
	}
	if _, ok := s.more[k]; !ok {
		return false
	}
	delete(s.more, k)
	if len(s.more) == 0 {
		s.more = nil
	}
	return true
}

func (s *sinkSet) len() int {
	n := len(s.more)
	if s.one != nil {
		n++
	}
	return n
}

func (s *sinkSet) appendTo(buf []Sink) []Sink {
	if s.one != nil {
		buf = append(buf, s.one)
	}
	for k := range s.more {
		buf = append(buf, k)
	}
	return buf
}

// hubConn is one Pub/Sub connection and its channels.
type hubConn struct {
	addr     string
	ps       *redis.PubSub
	channels int
	started  bool
}

// NewHub returns a Hub for the sessions of store. Run must be running for
// Follow to return.
// The store's scripts deliver their events to this Hub's sinks directly
// (one Hub per Store).
func NewHub(rdb redis.UniversalClient, store *Store, log *slog.Logger) *Hub {
	h := &Hub{
		rdb:    rdb,
		store:  store,
		log:    log,
		subs:   make(map[string]*follow),
		shards: make(map[string]*hubConn),
	}
	store.local.Store(h)
	return h
}

// Follow starts delivering the session's events to sink and returns once
// Redis has confirmed the subscription, so that an event published after
// Follow returns is delivered. The caller reads the log for what came
// before. stop ends the delivery; it is idempotent.
func (h *Hub) Follow(ctx context.Context, id string, sink Sink) (stop func(), err error) {
	ch := h.store.Channel(id)
	addr, err := h.shardOf(ctx, ch)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	f := h.subs[ch]
	first := f == nil
	if first {
		f = &follow{ready: make(chan struct{}), counted: make(chan struct{})}
		if err := h.subscribeLocked(ctx, f, addr, ch); err != nil {
			h.mu.Unlock()
			return nil, err
		}
		h.subs[ch] = f
	}
	f.sinks.add(sink)
	ready, counted := f.ready, f.counted
	h.mu.Unlock()

	stop = func() { h.unfollow(id, ch, sink) }
	if first {
		// Counted before Follow returns: a script that runs later
		// publishes to us, one that ran before is in the caller's read of
		// the log. Outside h.mu: it is a round trip.
		f.countErr = h.store.countFollow(id, 1)
		close(counted)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	<-counted // the first follower's, bounded by countFollow's timeout
	if f.countErr != nil {
		stop()
		return nil, f.countErr
	}
	if first {
		h.mu.Lock()
		f.settleLocked()
		h.mu.Unlock()
	}
	return stop, nil
}

// shardOf is the address of the master node that serves channel ch with
// sharded Pub/Sub on a cluster, and "" otherwise (one connection serves
// every channel).
func (h *Hub) shardOf(ctx context.Context, ch string) (string, error) {
	cc, ok := h.rdb.(*redis.ClusterClient)
	if !ok || !h.store.Sharded() {
		return "", nil
	}
	node, err := cc.MasterForKey(ctx, ch)
	if err != nil {
		return "", fmt.Errorf("session: the shard of %s: %w", ch, err)
	}
	return node.Options().Addr, nil
}

// subscribeLocked subscribes ch on the connection of shard addr, opening
// it if need be. SUBSCRIBE and UNSUBSCRIBE of one channel are sent under
// h.mu so that they reach Redis in the order of our own bookkeeping.
func (h *Hub) subscribeLocked(ctx context.Context, f *follow, addr, ch string) error {
	c := h.shards[addr]
	if c == nil {
		c = &hubConn{addr: addr, ps: h.newPubSub()}
		h.shards[addr] = c
	}
	var err error
	if h.store.Sharded() {
		// On a cluster the connection is opened at the first channel, on
		// the node that owns its slot.
		err = c.ps.SSubscribe(ctx, ch)
	} else {
		err = c.ps.Subscribe(ctx, ch)
	}
	if err != nil {
		if c.channels == 0 {
			h.dropLocked(c)
		}
		return fmt.Errorf("session: subscribe: %w", err)
	}
	c.channels++
	f.conn = c
	// Receiving starts only once the connection has a channel: opened by
	// Receive with none, a cluster's would go to a random node.
	h.startLocked(c)
	return nil
}

// newPubSub is an unsubscribed Pub/Sub of the right kind; its connection
// is opened at the first subscription.
func (h *Hub) newPubSub() *redis.PubSub {
	if h.store.Sharded() {
		return h.rdb.SSubscribe(context.Background())
	}
	return h.rdb.Subscribe(context.Background())
}

// startLocked starts c's receiving goroutine if Run runs; otherwise Run
// starts it.
func (h *Hub) startLocked(c *hubConn) {
	if h.runCtx == nil || c.started {
		return
	}
	c.started = true
	h.wg.Add(1)
	go func() { // ends when Run's context ends or c is closed
		defer h.wg.Done()
		h.receive(h.runCtx, c)
	}()
}

// dropLocked closes a shard's connection that follows nothing (a sharded
// one only: the classic connection stays for the next channel).
func (h *Hub) dropLocked(c *hubConn) {
	if !h.store.Sharded() {
		return
	}
	delete(h.shards, c.addr)
	_ = c.ps.Close()
}

func (h *Hub) unfollow(id, ch string, sink Sink) {
	if f, counted := h.dropSink(ch, sink); f != nil {
		// The last sink: the first one's Follow has counted the follow
		// (it ran before its own stop), so uncounting cannot overtake it.
		<-counted
		if f.countErr == nil {
			if err := h.store.countFollow(id, -1); err != nil {
				h.log.Warn("uncount a follow", "session", id, "err", err)
			}
		}
	}
}

// dropSink removes sink and returns its follow, unsubscribed, and the
// follow's counted channel when it was the last one.
func (h *Hub) dropSink(ch string, sink Sink) (*follow, chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.subs[ch]
	if f == nil || !f.sinks.remove(sink) || f.sinks.len() > 0 {
		return nil, nil
	}
	delete(h.subs, ch)
	h.unsubscribeLocked(f, ch)
	return f, f.counted
}

func (h *Hub) unsubscribeLocked(f *follow, ch string) {
	c := f.conn
	c.channels--
	if c.channels == 0 && h.store.Sharded() {
		h.dropLocked(c)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	if h.store.Sharded() {
		err = c.ps.SUnsubscribe(ctx, ch)
	} else {
		err = c.ps.Unsubscribe(ctx, ch)
	}
	if err != nil {
		h.log.Warn("unsubscribe failed", "channel", ch, "err", err)
	}
}

// Run receives from the replica's Pub/Sub connections and dispatches to
// the sinks. It returns when ctx is cancelled, with every receiving
// goroutine ended.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	h.runCtx = ctx
	for _, c := range h.shards {
		h.startLocked(c)
	}
	h.mu.Unlock()
	tick := time.NewTicker(lostEvery)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			h.resyncLost(ctx)
		}
	}
	h.mu.Lock()
	for _, c := range h.shards {
		_ = c.ps.Close() // unblocks its Receive
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// receive dispatches what one connection brings until ctx ends or the
// connection is closed.
func (h *Hub) receive(ctx context.Context, c *hubConn) {
	var sinks []Sink
	for {
		msg, err := c.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			// go-redis reconnects and resubscribes on the next Receive; the
			// confirmations that follow trigger a resync.
			h.log.Warn("pubsub receive failed; reconnecting", "shard", c.addr, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			payload := []byte(m.Payload)
			prev, events, own := h.header(payload)
			if own {
				continue // delivered here by the script's caller (local)
			}
			sinks = h.sinksOf(m.Channel, sinks[:0], false)
			if len(sinks) == 0 {
				continue
			}
			deliver(sinks, prev, events)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				// A second confirmation for a channel means the connection
				// was re-established: events in the gap were not delivered.
				sinks = h.sinksOf(m.Channel, sinks[:0], true)
				for _, s := range sinks {
					s.Resync()
				}
			case "sunsubscribe":
				h.moved(ctx, c, m.Channel)
			}
		}
		clear(sinks)
	}
}

// header splits a message: a script's has a first line of its own, the
// replica that stored the events and the id of the log's event before
// them (fanout.lua); an ephemeral event's is the event alone, and so is a
// stored one's from a replica that predates the header (prev unknown).
// own says that this replica's script sent it.
func (h *Hub) header(payload []byte) (prev string, events []byte, own bool) {
	if len(payload) == 0 || payload[0] == '{' {
		return "", payload, false
	}
	line, events, _ := bytes.Cut(payload, newline)
	replica, p, _ := bytes.Cut(line, space)
	return string(p), events, string(replica) == h.store.replica
}

// deliver hands each event of a message to the sinks, in order; a script
// that appends several sends them in one message, a line each.
func deliver(sinks []Sink, prev string, events []byte) {
	for len(events) > 0 {
		wire, rest, _ := bytes.Cut(events, newline)
		for _, s := range sinks {
			s.Deliver(prev, wire)
		}
		if prev != "" {
			prev = event.IDOf(wire)
		}
		events = rest
	}
}

// local delivers the events that a script of this replica has just
// stored (ids[i], bodies[i] as stored, prev the log's id before the
// first) to the session's sinks here: the script publishes them only for
// the other replicas (fanout.lua).
func (h *Hub) local(ch, prev string, ids []string, bodies [][]byte) {
	var buf [4]Sink
	sinks := h.sinksOf(ch, buf[:0], false)
	if len(sinks) == 0 {
		return
	}
	for i, id := range ids {
		wire := event.WithID(id, bodies[i])
		for _, s := range sinks {
			s.Deliver(prev, wire)
		}
		prev = id
	}
}

// lostEvery is how often the Hub looks at its lost channels.
const lostEvery = time.Second

// markLost is for a script of this replica that failed after it may have
// stored events (its reply, and so their local delivery, lost): the
// session's sinks here are told to read the log, once Redis answers
// (during an outage their read would fail too).
func (h *Hub) markLost(ch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[ch] == nil {
		return // no sink here
	}
	if h.lost == nil {
		h.lost = make(map[string]struct{})
	}
	h.lost[ch] = struct{}{}
}

// resyncLost resyncs the sinks of the lost channels if Redis answers.
func (h *Hub) resyncLost(ctx context.Context) {
	h.mu.Lock()
	n := len(h.lost)
	h.mu.Unlock()
	if n == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, lostEvery)
	defer cancel()
	if h.rdb.Ping(pctx).Err() != nil {
		return // at the next tick
	}
	h.mu.Lock()
	lost := h.lost
	h.lost = nil
	h.mu.Unlock()
	var buf [4]Sink
	for ch := range lost {
		for _, s := range h.sinksOf(ch, buf[:0], false) {
			s.Resync()
		}
	}
}

var newline, space = []byte{'\n'}, []byte{' '}

// moved handles an SUNSUBSCRIBE: one we sent, or the cluster's when the
// channel's slot moved to another node. For a channel still followed
// through c, that is the second: subscribe it where it lives now, and
// have its sinks read what they missed. It runs off the receiving
// goroutine, since finding the new owner may take a few tries.
func (h *Hub) moved(ctx context.Context, c *hubConn, ch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.subs[ch]; f == nil || f.conn != c {
		return
	}
	h.wg.Add(1)
	go func() { // ends when resubscribed, unfollowed, or after 10 s
		defer h.wg.Done()
		h.resubscribe(ctx, c, ch)
	}()
}

func (h *Hub) resubscribe(ctx context.Context, c *hubConn, ch string) {
	cc, _ := h.rdb.(*redis.ClusterClient)
	for try := 0; try < 100 && ctx.Err() == nil; try++ {
		if cc != nil {
			cc.ReloadState(ctx) // lazily: the next tries see the new owner
		}
		addr, err := h.shardOf(ctx, ch)
		if err == nil && addr != c.addr {
			if h.rehome(ctx, c, ch, addr) {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	h.log.Warn("a channel's slot moved and it could not be subscribed again", "channel", ch)
}

// rehome moves channel ch from connection c to the shard at addr. It
// reports whether it is done (or nothing is left to do).
func (h *Hub) rehome(ctx context.Context, c *hubConn, ch, addr string) bool {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.subs[ch]
	if f == nil || f.conn != c {
		return true // unfollowed meanwhile
	}
	if err := h.subscribeLocked(sctx, f, addr, ch); err != nil {
		h.log.Debug("resubscribe after a slot move", "channel", ch, "err", err)
		return false
	}
	_ = c.ps.SUnsubscribe(sctx, ch) // forget it on the old connection too
	c.channels--
	if c.channels == 0 {
		h.dropLocked(c)
	}
	for _, s := range f.sinks.appendTo(nil) {
		s.Resync()
	}
	return true
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
	return f.sinks.appendTo(buf)
}
