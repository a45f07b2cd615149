// Package testkit is what the tests of this repository share, so that it
// is written once: test signals (tones and their levels), a fake clock
// (Clock), a goroutine leak check (CheckGoroutines) and the measure of
// the goroutine stacks something holds (StackPer). Its sub-packages
// hold what needs more imports: redistest (a real redis-server per test),
// fakes (hand-written fakes of the models, the turn engine, the session's
// events, the recogniser, the synthesiser and a call's front end),
// wsclient (the WebSocket test client of the Parley protocol) and npm
// (npm projects pinned by their lockfiles, installed once into a cache
// outside the repository).
//
// It imports nothing of Parley's, so that any package's own tests may use
// it. Everything here is safe for concurrent use.
package testkit
