package signaling

import (
	"bufio"
	"io"
	"sync"
	"syscall"
)

// readiness lets an idle socket wait for its client without a deep
// goroutine: the reader parks in a shallow wait for the TCP connection to
// be readable, and reads messages (in gorilla, whose read path grows a
// goroutine's stack to 8 KB) on a goroutine of its own only while there is
// one to read. An idle socket then holds one goroutine on a small stack:
// the stack was 8.4 of an idle socket's 20.7 KB (docs/benchmarks.md, "Idle
// scale").
//
// It needs the bytes gorilla has buffered (br, ours: handed to gorilla
// through the hijack) and the connection's descriptor (rc): a connection
// that is not a plain socket (TLS, a test's pipe) has no readiness, and
// its reader reads directly. Its calls are the reader's.
//
// The read buffer is the socket's only while it reads (take, release): an
// idle socket's br is an empty bufio.Reader, and its buffer waits in a
// pool for whichever socket reads next.
type readiness struct {
	br     *bufio.Reader // gorilla's; empty (no buffer) while the socket is idle
	conn   io.Reader     // what br reads from
	held   bool          // br holds a buffer
	spare  *bufio.Reader // the empty reader the held buffer came in, to carry it back
	rc     syscall.RawConn
	peek   [1]byte
	waitFn func(fd uintptr) bool // r.readable, made once: a method value per call would allocate
}

// readBuffers holds the read buffers of the sockets that are not reading,
// each in a bufio.Reader of its own: bufio has no call that hands a
// buffer over, but a Reader's value can be copied into gorilla's. Of an
// idle socket's live heap the buffer was 608 B of 4.5 KB
// (docs/benchmarks.md, "Idle scale").
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBuffer) }}

func newReadiness(br *bufio.Reader, conn io.Reader, rc syscall.RawConn) *readiness {
	r := &readiness{br: br, conn: conn, held: true, rc: rc}
	r.waitFn = r.readable
	return r
}

// take gives br a buffer, before gorilla reads through it. Not on the
// shallow wait's stack: a pool's Get runs deep.
func (r *readiness) take() {
	if r.held {
		return
	}
	b := readBuffers.Get().(*bufio.Reader)
	b.Reset(r.conn)
	*r.br = *b
	*b = bufio.Reader{}
	r.held, r.spare = true, b
}

// release sends br's buffer back to the pool when it holds no bytes (a
// byte buffered is the next frame's, for the next reader).
func (r *readiness) release() {
	if !r.held || r.br.Buffered() > 0 {
		return
	}
	b := r.spare
	if b == nil {
		b = new(bufio.Reader) // the buffer of the hijack, the first time
	}
	*b = *r.br
	*r.br = bufio.Reader{}
	r.held, r.spare = false, nil
	readBuffers.Put(b)
}

// wait returns when a frame's first byte may be read without blocking, or
// with the error of the wait (the read deadline's timeout, a closed
// connection). It holds no buffer while it waits (an empty br has none
// buffered).
func (r *readiness) wait() error {
	if r.br.Buffered() > 0 {
		return nil
	}
	return r.rc.Read(r.waitFn)
}

// WebSocket frame header bits (RFC 6455, section 5.2).
const (
	finBit   = 0x80
	rsvBits  = 0x70
	opBits   = 0x0f
	maskBit  = 0x80
	opPing   = 0x9
	opPong   = 0xa
	maxCtrl  = 125
	ctrlHead = 2 + 4 // a client's control frame: two bytes, then the mask key
)

// control reads the next frame if it is a ping or a pong that gorilla
// would accept (final, masked, no reserved bits, at most 125 bytes), and
// returns its opcode and unmasked payload; op 0 means the next frame is
// gorilla's to read (a message, a close, or anything it must judge). It
// may block for the rest of a frame under the read deadline; err is that
// read's.
func (r *readiness) control() (op int, payload []byte, err error) {
	h, err := r.br.Peek(2)
	if err != nil {
		return 0, nil, err
	}
	op = int(h[0] & opBits)
	n := int(h[1] &^ maskBit)
	if (op != opPing && op != opPong) || h[0]&finBit == 0 || h[0]&rsvBits != 0 || h[1]&maskBit == 0 || n > maxCtrl {
		return 0, nil, nil
	}
	f, err := r.br.Peek(ctrlHead + n)
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	for i := range payload {
		payload[i] = f[ctrlHead+i] ^ f[2+i%4]
	}
	_, _ = r.br.Discard(ctrlHead + n)
	return op, payload, nil
}
