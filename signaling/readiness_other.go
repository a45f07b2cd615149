//go:build !linux

package signaling

// readable is never called off Linux: canWait is false there, and a
// socket's reader reads directly (its peek is a raw Linux syscall).
func (r *readiness) readable(uintptr) bool { return true }

const canWait = false
