// Package event is the one schema of what a session says: every event
// that is stored in a session's log or sent to its clients (a transcript,
// a reply's pieces and its end, an interruption, a tool call, a key
// pressed on a phone, an error, the bot's state, a call's latency
// figures), every error code, and their stored form, defined once.
//
// The stored form of an event is its JSON object with "type" first, as
// Marshal writes it; a stored event's wire form puts the log entry's id
// before it ({"id":"…","type":…}, WithID). The core (pipeline/...) speaks
// these types; each front end encodes them in its own protocol. The
// Parley protocol's events are this form as it is, so its sockets send
// the stored bytes unchanged; the OpenAI Realtime and Twilio front ends
// Decode them and encode their own. The events every turn makes are
// written by hand (marshal.go), the same bytes as encoding/json's for the
// rest, which the tests hold them to.
//
// Everything here is a pure function or an immutable value: safe for
// concurrent use.
package event
