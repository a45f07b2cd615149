package signaling

import "sync"

// frameQueue is a socket's bounded send queue. Unlike a buffered channel
// it holds memory only for what is queued, so the thousands of idle
// sockets of a replica cost nothing here. Push never blocks: at the bound
// it refuses, and the client counts as slow.
type frameQueue struct {
	mu    sync.Mutex
	items []frame
	max   int
	ready chan struct{} // signalled when items goes from empty to not
	// A writer goroutine is on. An idle socket has none: one is started
	// by the push that finds it off, and stops when it empties the queue.
	running bool
	closing bool // the connection is closing: the writer is to finish it
	final   bool // the connection closed: no writer is started again
}

func newFrameQueue(max int) *frameQueue {
	return &frameQueue{max: max, ready: make(chan struct{}, 1)}
}

// push appends f; ok false when the queue is full. start: no writer was
// on, and the caller must start one.
func (q *frameQueue) push(f frame) (ok, start bool) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false, false
	}
	q.items = append(q.items, f)
	start = q.claim()
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true, start
}

// claim marks a writer as on; true if the caller is to start it. q.mu held.
func (q *frameQueue) claim() bool {
	if q.running || q.final {
		return false
	}
	q.running = true
	return true
}

// closeKick marks the connection as closing, and reports whether the
// caller must start a writer to write the close frame (none was on).
func (q *frameQueue) closeKick() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closing = true
	return q.claim()
}

// finish: the connection's last writer has ended; none starts again.
func (q *frameQueue) finish() {
	q.mu.Lock()
	q.final = true
	q.mu.Unlock()
}

// pop takes the oldest frame; false when empty. An emptied queue lets go
// of its array.
func (q *frameQueue) pop() (frame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.popLocked()
}

// Outcomes of popOrStop.
const (
	popFrame   = iota // a frame to write
	popStopped        // the queue was empty: the writer is marked off and must return
	popClosing        // the connection is closing and its frames are out: the writer must finish it
)

// queued reports whether frames are waiting.
func (q *frameQueue) queued() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) > 0
}

// popOrStop is pop for an on-demand writer. Its checks are atomic with
// push and closeKick, so no frame and no close is left without a writer.
// A closing connection's queued frames still come first (an error before
// the close frame that it explains).
func (q *frameQueue) popOrStop() (frame, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f, ok := q.popLocked(); ok {
		return f, popFrame
	}
	if q.closing {
		return frame{}, popClosing
	}
	q.running = false
	return frame{}, popStopped
}

func (q *frameQueue) popLocked() (frame, bool) {
	if len(q.items) == 0 {
		return frame{}, false
	}
	f := q.items[0]
	q.items[0] = frame{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return f, true
}
