// Package pcm is raw 16-bit little-endian mono PCM behind media.Codec,
// at a rate of the front end's choosing: the "audio/pcm" format of the
// OpenAI Realtime protocol (24 kHz there).
//
// Codec and its encoders are safe for concurrent use; a Decoder reuses its
// output buffer (one per stream).
package pcm
