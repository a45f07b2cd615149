// Package pipeline owns what happens to a user turn once it has been
// received: rate limiting, persistence, the LLM pool (slots, bounded queue,
// micro-batching), streaming the reply into the session's event log, and
// takeover of turns whose replica died.
//
// Sub-packages hold the parts that stand alone: session (the Redis Streams
// event log, resume tokens and cross-replica delivery), ratelimit (the Redis
// token bucket), openai and local (LLM providers), redistest (a throwaway
// redis-server for tests).
//
// Engine's methods are safe for concurrent use. Run must be called exactly
// once; it returns when its context is cancelled and the in-flight turns
// have stopped.
package pipeline
