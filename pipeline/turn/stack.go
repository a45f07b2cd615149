package turn

// A batch runs on a goroutine of its own (cheaper than a pool of slot
// goroutines, measured), which starts on the runtime's small initial
// stack. Finishing a turn (the store's script, the events' encoding)
// needs a little more, so every batch grew its stack once, deep in the
// finish, where the runtime copies the stack and adjusts each frame on
// it: 4 % of a replica's CPU at the seed's load (pprof: runtime.copystack
// under event.appendEvent). Growing it at the batch's start, while only a
// frame or two are on it, costs a fraction of that.

// batchStack is about what a batch's deepest path uses (pprof shows no
// growth past it): the runtime rounds the stack up to the next power of
// two that holds it.
const batchStack = 5 << 10

// growStack grows the calling goroutine's stack to hold batchStack more
// bytes than it holds now.
//
//go:noinline
func growStack() {
	var pad [batchStack]byte
	touch(pad[:])
}

// touch keeps pad (and so growStack's frame) from being optimised away.
//
//go:noinline
func touch(b []byte) { b[len(b)-1] = 1 }
