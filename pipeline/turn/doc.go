// Package turn is the turn engine: the one path every user turn takes,
// typed or spoken, from any front end: admission against this replica's
// slots and queue, the session and global token buckets, persistence of
// the turn and of its job before the model is called, micro-batching onto
// free slots, the reply streamed into the session's log, held turns whose
// reply a call speaks, the tool loop (or, with a session's
// EndAtClientTools, a reply that ends at the client's tool calls, for the
// next response to see their results), and takeover of the turns of a
// replica that died.
//
// Engine's methods are safe for concurrent use. Run must be called exactly
// once; it returns when its context is cancelled and the in-flight turns
// have stopped.
package turn
