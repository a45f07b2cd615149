// Package signaling owns the client's socket: the WebSocket endpoint at
// /ws, the wire protocol (docs/protocol.md), and each connection's reader
// and writer goroutines. It turns client messages into calls on the
// pipeline and session events into frames.
//
// Before the upgrade, a request's client address is the TCP peer, or,
// from one of the trusted proxies (Config.TrustedProxies), the address the
// proxies recorded in X-Forwarded-For or Forwarded, read right to left
// (clientIP). The request must then pass, in this order: the per-IP caps
// on open connections and new connections per second (off by default;
// when set, every request spends the rate, a token guess too); the
// optional authentication (a static bearer token or an HMAC-signed token
// with an expiry, see SignToken), with a budget of failed authentications
// per address (on whenever authentication is: a good token always passes,
// a wrong one past the budget gets 429 auth_rate); the allowed origins;
// and the drain. A refusal is a plain HTTP 429 (with Retry-After), 401,
// 403 or 503 that names its Reason, counted in
// parley_ws_refused_total{reason}; the log has the reason and the client's
// address, never a token. A session's user turns are capped in the
// session store; past the cap a text turn gets the error turn_limit and
// the socket goes on.
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
// A call is over the WebSocket (Opus in binary frames) or WebRTC (a pion
// peer negotiated on the socket, from one of two APIs: with loopback
// candidates for a client on this host, or without). A WebRTC call moves
// to the WebSocket on the client's word, on the same socket, the call
// going on.
//
// Server's methods are safe for concurrent use, except SetVoice, which is
// called once before serving. SignToken and ParseTrustedProxies are pure
// functions, safe anywhere.
// A connection's goroutines end when the socket closes or Shutdown is
// called. Shutdown (a drain) refuses new sockets and tells each open one
// to reconnect after its own random delay below Config.ReconnectSpread,
// before its close frame; a socket upgraded while Shutdown runs is told
// too.
package signaling
