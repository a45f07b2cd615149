// Package realtime serves the OpenAI Realtime API's WebSocket protocol on
// GET /v1/realtime (docs/realtime.md), and its WebRTC flow on POST
// /v1/realtime/calls (calls.go: the offer answered, a Socket over the
// oai-events data channel, the audio as Opus on the tracks, the same conn
// on top), beside the Parley protocol, on the
// same core: a Realtime connection is a new Parley session, its items are
// the session's history, its responses are turns of the engine, its audio
// goes through a voice call (pipeline/call) with PCM16 or G.711 as the
// codec.
//
// A connection's state (the Realtime session object, the items and
// responses as the client has been told of them) is the connection's own
// (conn); what any replica needs to answer a response (instructions,
// tools, tool choice, the server's tools chosen by mcp entries (mcp.go),
// the end of a reply at a client's tool call) is the
// session's settings in Redis. The session's stored events are encoded
// into Realtime events by an encoder of its own (encoder): one stored
// event is a few Realtime events, and ids are derived from turns and
// call ids, so they do not depend on the replica.
//
// Server's methods are safe for concurrent use. A connection's handler
// runs on its socket's reader goroutine; its encoder is called from the
// reader, the session feed (the Hub's goroutine, or the socket's writer
// for a replay) and the call's pacer, under the encoder's lock, which is
// taken before the socket's queue lock and after the feed's. The call's
// goroutines end when the socket closes (or when a format change
// restarts the call). A WebRTC call's socket ends when its data channel
// closes or its peer connection fails or closes; the peer connection is
// then closed, which ends pion's goroutines and the reader of the
// caller's track (pion's, calling callPeer.heard).
package realtime
