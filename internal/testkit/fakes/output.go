package fakes

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleyhq/parley/pipeline/event"
)

// Output is a fake front end of a voice call (call.Output): it records
// the frames and the events it is sent, and never blocks.
type Output struct {
	mu      sync.Mutex
	frames  [][]byte
	events  []Sent
	changes changes
}

// Sent is one event an Output was sent, and how many frames it had been
// sent before it.
type Sent struct {
	Event  event.Event
	Frames int
}

// SendAudio implements call.Output.
func (o *Output) SendAudio(frame []byte) error {
	o.mu.Lock()
	o.frames = append(o.frames, append([]byte(nil), frame...))
	o.mu.Unlock()
	o.changes.changed()
	return nil
}

// SendEvent implements call.Output.
func (o *Output) SendEvent(ev event.Event) {
	o.mu.Lock()
	o.events = append(o.events, Sent{Event: ev, Frames: len(o.frames)})
	o.mu.Unlock()
	o.changes.changed()
}

// Frames are the frames sent so far.
func (o *Output) Frames() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([][]byte(nil), o.frames...)
}

// FrameCount is how many frames have been sent.
func (o *Output) FrameCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.frames)
}

// Events are the events sent so far.
func (o *Output) Events() []Sent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Sent(nil), o.events...)
}

// States are the bot states sent so far, in order.
func (o *Output) States() []event.BotState {
	var out []event.BotState
	for _, s := range Of[event.State](o.Events()) {
		out = append(out, s.State)
	}
	return out
}

// State is the last bot state sent ("" for none).
func (o *Output) State() event.BotState {
	s := o.States()
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// WaitFrames waits until n frames have been sent.
func (o *Output) WaitFrames(tb testing.TB, n int) {
	tb.Helper()
	o.changes.wait(tb, fmt.Sprintf("%d frames", n), func() bool { return o.FrameCount() >= n })
}

// WaitState waits until the last state sent is s.
func (o *Output) WaitState(tb testing.TB, s event.BotState) {
	tb.Helper()
	o.changes.wait(tb, fmt.Sprintf("state %s", s), func() bool { return o.State() == s })
}

// WaitEvent waits for an event that match accepts and returns it.
func (o *Output) WaitEvent(tb testing.TB, what string, match func(event.Event) bool) Sent {
	tb.Helper()
	var got Sent
	o.changes.wait(tb, what, func() bool {
		for _, s := range o.Events() {
			if match(s.Event) {
				got = s
				return true
			}
		}
		return false
	})
	return got
}

// Of are the events of type T among sent, in order.
func Of[T event.Event](sent []Sent) []T {
	var out []T
	for _, s := range sent {
		if e, ok := s.Event.(T); ok {
			out = append(out, e)
		}
	}
	return out
}

// PlayedOutput is an Output that also says how many of its frames the
// client has played (call.Played), as the test sets it: a front end that
// hears back from its client, as Twilio's marks do.
type PlayedOutput struct {
	Output
	played atomic.Int64
}

// Played implements call.Played.
func (o *PlayedOutput) Played() int64 { return o.played.Load() }

// SetPlayed sets what Played says.
func (o *PlayedOutput) SetPlayed(n int64) { o.played.Store(n) }

// FlushOutput is an Output that is also told when the call drops its
// queued audio (call.Flusher), as a front end whose client queues audio
// (Twilio) is: it records how many frames it had been sent at each Flush.
type FlushOutput struct {
	Output
	fmu     sync.Mutex
	flushes []int
}

// Flush implements call.Flusher.
func (o *FlushOutput) Flush() {
	n := o.FrameCount()
	o.fmu.Lock()
	o.flushes = append(o.flushes, n)
	o.fmu.Unlock()
	o.changes.changed()
}

// Flushes are the frame counts at each Flush, in order.
func (o *FlushOutput) Flushes() []int {
	o.fmu.Lock()
	defer o.fmu.Unlock()
	return append([]int(nil), o.flushes...)
}

// WaitFlushes waits for n Flush calls and returns the frame counts.
func (o *FlushOutput) WaitFlushes(tb testing.TB, n int) []int {
	tb.Helper()
	o.changes.wait(tb, fmt.Sprintf("%d flushes", n), func() bool { return len(o.Flushes()) >= n })
	return o.Flushes()
}
