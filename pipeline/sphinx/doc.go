// Package sphinx is the offline speech recogniser: CMU pocketsphinx
// (Debian's 5prealpha library and its US English model) through a small
// cgo binding.
//
// A decoder holds about 93 MB and keeps state between utterances, so the
// ASR keeps a bounded pool and gives each live call its own decoder. A
// call starts from the decoder's cepstral mean normalisation as loaded,
// not as the last call left it: what a call hears does not depend on
// who called before. That start counts for a second of audio, so that a
// call's first words adapt it to the call's own line (a phone's band).
// Decoding runs on the call's own goroutine, never on the caller's:
// Recognizer.Write only queues audio. ASR is safe for concurrent use; a
// Recognizer is used from one goroutine. Built with the "nospeech" tag the
// package has no cgo and New returns an error.
package sphinx
