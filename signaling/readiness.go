package signaling

import (
	"bufio"
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
type readiness struct {
	br     *bufio.Reader
	rc     syscall.RawConn
	peek   [1]byte
	waitFn func(fd uintptr) bool // r.readable, made once: a method value per call would allocate
}

func newReadiness(br *bufio.Reader, rc syscall.RawConn) *readiness {
	r := &readiness{br: br, rc: rc}
	r.waitFn = r.readable
	return r
}

// wait returns when a frame's first byte may be read without blocking, or
// with the error of the wait (the read deadline's timeout, a closed
// connection). It holds no buffer while it waits.
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
