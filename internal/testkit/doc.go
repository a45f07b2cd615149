// Package testkit is what the tests of this repository share, so that it
// is written once: test signals (tones and their levels), and a goroutine
// leak check. Its sub-packages hold what needs more imports: redistest
// (a real redis-server per test), fakes (hand-written LLM, recogniser and
// synthesiser fakes), wsclient (the WebSocket test client of the Parley
// protocol) and npm (npm projects pinned by their lockfiles, installed
// once into a cache outside the repository).
//
// It imports nothing of Parley's, so that any package's own tests may use
// it. Everything here is safe for concurrent use.
package testkit
