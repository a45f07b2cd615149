// Package parley is the Parley protocol (docs/protocol.md) on /ws: a
// session per socket (hello, resume with last_event), typed turns,
// interruptions, and calls, with Opus over the socket or over WebRTC (a
// pion peer negotiated on the socket, from one of two APIs of signaling/rtc: with loopback
// candidates for a client on this host, or without). A WebRTC call moves
// to the WebSocket on the client's word, on the same socket, the call
// going on.
//
// It is one encoding of the core's typed events (pipeline/event): the
// stored form of a session event is this protocol's wire form, so its
// feed sends stored events as they are, and a call's own events are
// marshalled the same way. Admission, the socket's transport and the
// session feed are the gateway's (signaling).
//
// Server's methods are safe for concurrent use. A connection's handler
// runs on its socket's reader goroutine; its call's goroutines and pion's
// end when the socket closes.
package parley
