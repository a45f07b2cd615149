// Package call owns a voice call: the caller's PCM in, through the voice
// activity detector and a streaming recogniser, into the turn engine as a
// user turn; the reply's text out, sentence by sentence through the
// synthesiser, as frames of the codec the front end chose, paced at real
// time. The caller speaking over the reply cuts it off (barge-in), and the
// turn keeps only what was heard.
//
// A call knows no protocol and no codec: it speaks PCM and typed events
// (pipeline/event), and a front end (signaling/...) gives it a media.Codec
// for its wire, an Output for what it sends (optionally Played: what its
// client played, and Flusher: told to drop its client's queued audio when
// the call drops its own), and the PCM it hears. It
// follows the session's events itself, so it sees its turns' replies from
// whichever replica writes them.
//
// How a call takes turns is its TurnTaking, which a front end may change
// during the call: the server's VAD or its own settings, a manual commit
// (Commit, Clear), an end of turn that only stores the caller's words as
// an item, no barge-in. An Output that is a Listener hears of the
// caller's speech starting and stopping and of the items stored.
// With Voice.Recorder set, a call is recorded (pipeline/record): it hands
// its Recording the caller's PCM as it arrives, the bot's frames as they
// are sent (decoded back to PCM), what a barge-in cut, and its turns.
//
// Voice is shared by a replica's calls and safe for concurrent use. A
// Call's Audio, SubmitText, Respond, Commit, Clear, SetTurnTaking, Turn,
// Interrupt and Deliver are safe from any goroutine; Run owns the rest and runs three goroutines (listen, speak,
// pacer) that end with its context.
package call
