// Package memory gives the process's freed heap back to the operating
// system when the process is at rest.
//
// Go's collector lets the heap grow to (1 + GC percent/100) times what is
// live before it collects, and its scavenger keeps the freed memory below
// that goal: after a burst (ten thousand clients connecting at once, a
// wave of turns) a replica that then only holds idle sockets keeps the
// burst's memory, up to three times its live heap at Parley's GC percent
// of 200. A Releaser looks every Interval at how much the process
// allocated since its last look: when that is a small part of the GC's
// headroom (the next collection is far off, so the process is at rest)
// and it holds enough past its live heap (garbage not yet collected,
// freed memory not yet returned), it collects and returns that memory
// (debug.FreeOSMemory): at rest the process holds about its live heap. A busy process is left alone: its collector
// runs often and the memory it holds is in use.
//
// Run is the only call; a Releaser is used by one goroutine.
package memory
