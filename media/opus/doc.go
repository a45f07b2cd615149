// Package opus is the Opus codec behind media.Codec: the audio of the
// Parley protocol's WebSocket calls and of WebRTC, 20 ms mono packets,
// encoded and decoded at the rates Opus takes itself (8, 12, 16, 24 and
// 48 kHz) so that a call needs no resampler where it can.
//
// Encoder and Decoder hold one stream's state and are NOT safe for
// concurrent use; Codec is.
package opus
