// Package media owns audio as the server handles it: Opus decoding and
// encoding (48 kHz mono, 20 ms frames), resampling between 48 kHz and the
// rates of speech recognisers and synthesisers, voice activity detection,
// and pacing outbound frames at real time.
//
// Nothing here knows about sockets or sessions. Decoder, Encoder,
// Resampler and VAD hold per-stream state and are NOT safe for concurrent
// use: each call's media goroutine owns its own. Pacer's Push, Flush and
// End are safe to call from any goroutine while Run runs; Run returns when
// its context ends.
package media
