// Package fakes holds hand-written fakes of what the core's components
// ask of each other, for any package's tests: models (Echo, Gate), the
// turn engine as a voice call sees it (Turns), the session's live events
// (Follower, which
// delivers wire events as session.Hub does), a streaming recogniser (ASR,
// with scripted transcripts), a synthesiser (TTS, whose audio lasts a
// fixed time per character) and a call's front end (Output, and
// PlayedOutput for one that learns what its client played, FlushOutput
// for one told when the call drops its queued audio).
//
// Each fake records what it was asked, and a test waits for that with the
// fake's Wait methods: they block on a channel the fake closes at each
// change, up to WaitTimeout, and never poll or sleep. Wait methods call
// tb.Fatalf, so call them from the test's goroutine.
//
// Every fake is safe for concurrent use. The package imports
// pipeline/session for the Sink type, so session's own internal tests
// cannot use it (an import cycle); its external tests can.
package fakes
