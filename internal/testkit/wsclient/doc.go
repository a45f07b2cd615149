// Package wsclient is the tests' WebSocket client of the Parley protocol:
// it dials, says hello or resumes, sends messages, and reads events
// (decoded loosely into Msg, with the raw text kept), remembering the last
// event id, as a resuming client must. Audio frames are skipped by Read;
// a test that wants them reads the socket (WS) itself.
//
// Send and SendRaw are safe from several goroutines (pion's callbacks send
// candidates too); the reads are for one goroutine.
package wsclient
