package clock

import "time"

// Clock tells the time and runs things later. Its methods use only the
// standard library's types, so that a fake needs no import of this
// package.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f on a goroutine of its own once d has passed;
	// stop cancels that and reports whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
	// NewTicker sends the time every d until stop is called. Like
	// time.Ticker, it drops ticks for a slow receiver.
	NewTicker(d time.Duration) (ticks <-chan time.Time, stop func())
}

// Real is the system clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// AfterFunc implements Clock.
func (Real) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// NewTicker implements Clock.
func (Real) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Or is c, or Real when c is nil: a zero Config field means the system
// clock.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
