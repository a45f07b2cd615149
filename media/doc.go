// Package media owns audio as a call handles it, whatever the wire: PCM,
// resampling between the rates of codecs, recognisers and synthesisers,
// voice activity detection, pacing outbound frames at real time, WAV; and
// the seam between a call and the codec its front end chose (Codec,
// Encoder, Decoder, in 20 ms frames). The codecs live beneath it: opus,
// g711 (mu-law and A-law) and pcm (16-bit little-endian).
//
// Nothing here knows about sockets, sessions or protocols. Encoders,
// Decoders, Resampler and VAD hold per-stream state and are NOT safe for
// concurrent use: each call's media goroutines own their own. Pacer's
// Push, Flush and End are safe to call from any goroutine while Run runs;
// Run returns when its context ends.
package media
