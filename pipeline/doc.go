// Package pipeline is the core of Parley: everything that happens to a
// conversation once a front end (signaling/...) has decoded what a client
// said, and nothing of any protocol's names or any codec. It holds no code
// of its own; its packages are:
//
//	event      the typed session events and error codes, and their stored form
//	session    sessions in Redis Streams: the event log, history, resume tokens, live delivery
//	ratelimit  the Redis token bucket
//	turn       the turn engine: admission, persistence, slots, batches, takeover, held turns
//	call       a voice call: VAD → recogniser → turn → sentences → synthesiser → frames
//	llm        what the engine asks of a language model
//	speech     what a call asks of a recogniser and a synthesiser
//	openai, local, sphinx, flite   the providers
//
// Nothing under pipeline/ imports signaling/; call and turn import no
// protocol and no codec.
package pipeline
