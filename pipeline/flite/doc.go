// Package flite is the offline text-to-speech provider: Festival-lite
// through a small cgo binding, with its US English voices (kal16 by
// default: fast, deterministic, and recognised well by pocketsphinx).
//
// Each Synthesize call makes its own flite utterance with its own
// streaming callback, so calls on one voice are safe from many goroutines.
// Built with the "nospeech" tag, the package has no cgo and New returns an
// error, so a server without Debian's flite packages still builds.
package flite
