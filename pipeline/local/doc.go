// Package local is the offline responder: a deterministic stand-in for a
// language model, so that a demo runs with no keys and no downloads. It
// greets, tells the time and the date, lists what it can do, and repeats
// anything else, and it says plainly that it is not a language model.
//
// Responder is safe for concurrent use.
package local
