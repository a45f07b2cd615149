// Package twilio answers phone calls through Twilio: Twilio's voice
// webhook (POST /twilio/voice) and the bidirectional Media Stream it then
// opens (GET /twilio/media, a WebSocket through the gateway). Twilio's
// documentation ("Media Streams - WebSocket Messages", "TwiML <Stream>",
// "Webhooks security") is the authority for the wire; this package is one
// front end beside the Parley protocol's and imports no other.
//
// It owns:
//   - the webhook: it answers TwiML that connects the call to the Media
//     Stream at the public wss:// URL (Config.PublicURL, or the request's
//     Host), with the call's CallSid, From and To as <Parameter>s (Twilio
//     refuses a query string in a stream URL), after an optional greeting
//     (<Say>);
//   - the stream: connected, start (a new session per stream; the call's
//     Twilio identifiers and custom parameters in the session's metadata;
//     only 8 kHz mu-law mono is taken), media (mu-law decoded, into a
//     pipeline/call voice call at 8 kHz), dtmf (stored as a dtmf event and,
//     by default, a user turn saying which key was pressed), mark (how far
//     the caller has heard), stop (the session's call ends, the socket
//     closes normally). Bad messages are counted and dropped, and a flood
//     of them closes the socket; Twilio reads no error replies;
//   - the bot's audio: each 20 ms mu-law frame of the call's pacer as a
//     media message and a mark after it; the marks that come back say what
//     was played (call.Played), and a barge-in sends clear (call.Flusher),
//     after which the marks Twilio returns for the dropped audio are not
//     counted as played;
//   - the signatures: with Config.AuthToken, X-Twilio-Signature (HMAC-SHA1
//     of the URL Twilio requested, and the webhook's form parameters
//     sorted by name) is checked on the webhook and on the stream's
//     upgrade, in constant time, over the public URL.
//
// Server's methods are safe for concurrent use. A stream's handler runs
// on its socket's reader goroutine; its call's goroutines end when the
// socket closes, and the socket's serve goroutine waits for them.
package twilio
