//go:build race

package testkit

// Race says the race detector is on: its instrumentation makes every
// frame larger, so a test of how small a goroutine's stack stays bounds
// it more loosely under it (make test also runs those tests without it).
const Race = true
