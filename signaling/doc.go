// Package signaling is the gateway of every front end: what a protocol
// needs of a WebSocket, and nothing of any protocol's messages. The
// protocols stand beside each other beneath it (parley: the Parley
// protocol on /ws; realtime: the OpenAI Realtime protocol on
// /v1/realtime; twilio: Twilio Media Streams on /twilio/media) and map its
// typed reasons, errors and session events onto their own wire.
//
// It owns:
//   - admission (Gateway, Endpoint.Accept): before the upgrade, a
//     request's client address is the TCP peer, or, from one of the trusted
//     proxies (Config.TrustedProxies), the address the proxies recorded in
//     X-Forwarded-For or Forwarded, read right to left (clientIP). The
//     request must then pass, in this order: the per-IP caps on open
//     connections and new connections per second (off by default; when
//     set, every request spends the rate, a token guess too); the optional
//     authentication (a static bearer token or an HMAC-signed token with an
//     expiry, see SignToken; in the Authorization header, ?access_token, or
//     where the protocol carries it, Protocol.Token), with a budget of failed authentications per
//     address (on whenever authentication is: a good token always passes, a
//     wrong one past the budget gets 429 auth_rate), or instead the
//     protocol's own check (Protocol.Auth: Twilio signs its requests and
//     cannot send a token), refused 403 and counted alike; the allowed
//     origins; and the drain. A refusal is a plain HTTP 429 (with Retry-After), 401,
//     403 or 503 that names its Reason, counted in
//     parley_ws_refused_total{reason}; the log has the reason and the
//     client's address, never a token;
//   - the socket's transport (Socket): exactly one reader at a time (it
//     reads frames, with a size cap and a read deadline refreshed by
//     pongs, and hands them to the protocol's Handler; on a plain TCP
//     socket it waits for the client in a shallow wait, on a 2 KB stack,
//     and reads on a goroutine of its own, which stays while the socket
//     is busy and ends once it is quiet for Config.QuietAfter) and at most one
//     writer goroutine (the only one that writes; every write has a
//     deadline). An idle socket has no writer: one is started when a frame
//     is queued and ends when the queue is empty; a socket with a media
//     queue keeps its writer for the media. Frames reach the writer
//     through a bounded queue; a client too slow to drain it is
//     disconnected with ReasonSlowClient. Frames queued together go out in
//     one write (corkConn);
//   - a socket over another transport than a WebSocket: a front end
//     admits a plain HTTP request (Endpoint.Admit: the same checks as
//     Accept, in the same order), negotiates it, and opens a Socket over a
//     MessageConn (Admission.Open; a WebRTC data channel, signaling/rtc),
//     or gives the admission back (Admission.Release). Such a socket has
//     the same queue, writer and close, no pings and no read deadline (its
//     transport says when it ends), and its handler hears a Pong every
//     PingInterval while it is open;
//   - the session feed (Feed): a resuming client is sent the events it
//     missed, read from the session log by the writer, before live ones;
//     events are de-duplicated by id, so each is sent once, in order;
//   - session attach (Sessions.Attach): create or resume a session, follow
//     its live events into a feed;
//   - the one enum of close and refusal reasons (Reason), shared by logs
//     and metric labels; each protocol gives its close codes
//     (Protocol.CloseCode);
//   - the drain: Gateway.Shutdown refuses new sockets and tells each open
//     one, in its protocol's words (Protocol.GoingAway), to reconnect after
//     its own random delay below Config.ReconnectSpread, before its close
//     frame; a socket upgraded while Shutdown runs is told too.
//
// Gateway's and Endpoint's methods are safe for concurrent use; a
// Socket's are, except Serve (its reader), OpenMedia and SetLog, which are
// the reader's. A socket's goroutines end when it closes. SignToken and
// ParseTrustedProxies are pure functions, safe anywhere.
// Gateway.FromTrustedProxy tells a front end whether a request's peer is a
// trusted proxy, whose X-Forwarded-Proto it may believe.
package signaling
