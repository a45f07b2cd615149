// Package clock is the time a component reads and waits on, injected so
// that tests move it by hand instead of sleeping: Real is the system's,
// and internal/testkit has a fake one.
//
// Real is safe for concurrent use, and so must every Clock be.
package clock
