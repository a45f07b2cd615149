// Package endpoint decides when a caller has finished speaking: how much
// silence to wait for after their last voiced audio before the turn is
// theirs no more. A fixed wait answers too early when the caller pauses
// mid-thought ("I want to ... for two") and too late after a plain
// question; the wait here reads the recogniser's words so far.
//
// The rules, in order (the first that applies decides):
//
//  1. No words yet (the recogniser gives none while it listens): Normal.
//  2. One of the short complete replies ("yes", "no", "thank you", "bye",
//     "stop"): Short.
//  3. The last word cannot end a sentence: an article, a preposition, a
//     conjunction, an auxiliary or modal verb, a possessive, a subject
//     pronoun, a filler ("um", "uh"): Long.
//  4. A number is being dictated (the last two words are numbers, or the
//     last is one after "number", "code", "phone" and the like): Long.
//  5. A short request (six words or fewer) that names what is wanted and
//     usually goes on with the details ("I want", "I'd like", "I need",
//     "can I", "book", "order"): Long.
//  6. A question: it starts with a question word or an auxiliary and has
//     two words or more, or the recogniser ended it with "?": Short.
//  7. Anything else: Normal.
//
// Every wait is at most Max. The eagerness of OpenAI's semantic_vad maps
// onto the three waits (Eagerness).
//
// Endpointer is a pure function of its Config: safe for concurrent use.
package endpoint
