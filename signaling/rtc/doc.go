// Package rtc is the WebRTC plumbing that the front ends share, and none
// of their protocols: the pion APIs (Opus only, the network settings of
// Config, loopback candidates for a client on this host), the Opus track
// the bot speaks on, the reader of a caller's Opus track, and a data
// channel as a message connection under a signaling.Socket (DataConn).
// signaling/parley negotiates its peers over its WebSocket;
// signaling/realtime over POST /v1/realtime/calls.
//
// APIs is immutable once built: safe for concurrent use. A DataConn's
// methods are safe from any goroutine; its messages come on one channel,
// closed when the data channel closes.
package rtc
