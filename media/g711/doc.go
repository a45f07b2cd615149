// Package g711 is ITU-T G.711 behind media.Codec: mu-law (North America,
// Japan; Twilio Media Streams' audio/x-mulaw) and A-law (the rest of the
// world's telephony), 8 kHz mono, one byte per sample, 160 bytes per
// 20 ms frame.
//
// The codec is stateless; MuLaw and ALaw, their encoders and decoders are
// safe for concurrent use except Decoder.Decode, whose output buffer is
// reused (one decoder per stream).
package g711
