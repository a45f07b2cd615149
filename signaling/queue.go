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
}

func newFrameQueue(max int) *frameQueue {
	return &frameQueue{max: max, ready: make(chan struct{}, 1)}
}

// push appends f; false when the queue is full.
func (q *frameQueue) push(f frame) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, f)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest frame; false when empty. An emptied queue lets go
// of its array.
func (q *frameQueue) pop() (frame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
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
