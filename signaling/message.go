package signaling

import (
	"bytes"
	"io"
	"sync"

	"github.com/gorilla/websocket"
)

// messageScratch is the buffer a message is gathered in before it is
// copied out at its own size. Kept only up to keepScratch: a rare large
// message does not pin its buffer in the pool.
var messageScratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const keepScratch = 64 << 10

// readMessage is websocket.Conn.ReadMessage with the message in a slice
// of its own size. gorilla's reads through io.ReadAll, which starts at
// 512 bytes and grows by doubling: a typed turn's 60-byte frame held 512,
// and a Realtime append of 100 ms of audio (6 KB of base64) was copied
// through five buffers. The message is the caller's to keep, as before;
// the read limit and every error are gorilla's.
func readMessage(ws *websocket.Conn) (int, []byte, error) {
	kind, r, err := ws.NextReader()
	if err != nil {
		return kind, nil, err
	}
	bp := messageScratch.Get().(*[]byte)
	b, err := gather((*bp)[:0], r)
	var msg []byte
	if err == nil {
		msg = bytes.Clone(b) // b is never nil: an empty message is an empty slice, as ReadMessage gives it
	}
	if cap(b) <= keepScratch {
		*bp = b[:0]
		messageScratch.Put(bp)
	}
	return kind, msg, err
}

// gather appends what r reads to b until io.EOF.
func gather(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
