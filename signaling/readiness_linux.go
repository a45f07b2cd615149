//go:build linux

package signaling

import (
	"syscall"
	"unsafe"
)

// readable peeks at the socket: true when a byte, the end of the stream
// or an error is there to be read, false when reading would block (the
// descriptor is non-blocking). The peek must come after RawConn.Read has
// reset the poller's readiness, or bytes that came before would be
// missed: that is why it is a syscall and not a flag. A raw syscall (it
// never blocks) and no address buffer: this runs on the idle socket's
// shallow stack, and syscall.Recvfrom's frames alone would double it.
func (r *readiness) readable(fd uintptr) bool {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.peek[0])), 1, syscall.MSG_PEEK, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK
}

const canWait = true
