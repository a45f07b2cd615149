// Package signaling owns the client's socket: the WebSocket endpoint at
// /ws, the wire protocol (docs/protocol.md), and each connection's reader
// and writer goroutines. It turns client messages into calls on the
// pipeline and session events into frames.
//
// Before the upgrade, a request must pass the optional authentication (a
// static bearer token or an HMAC-signed token with an expiry, see
// SignToken), the allowed origins, and the per-IP caps on open
// connections and on new connections per second; a refusal is a plain
// HTTP 401, 403 or 429 that names its Reason.
//
// Per connection there is exactly one reader goroutine (it reads frames,
// with a size cap and a read deadline refreshed by pongs) and at most one
// writer goroutine (the only one that writes; every write has a deadline).
// An idle socket has no writer: one is started when a frame is queued and
// ends when the queue is empty; a WebSocket call's writer stays on for the
// call's audio. Events reach the writer through a bounded queue; a client
// too slow to drain it is disconnected with ReasonSlowClient. A resuming
// client is sent the events it missed, read from the session log by the
// writer, before live ones; events are de-duplicated by id, so each is
// sent once, in order.
//
// Server's methods are safe for concurrent use. A connection's goroutines
// end when the socket closes or Shutdown is called.
package signaling
