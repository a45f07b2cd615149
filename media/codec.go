package media

import "time"

// FrameDuration is the length of every audio frame a call sends or
// receives, whatever the codec: 20 ms, the usual packet time of Opus, RTP
// and G.711 telephony.
const FrameDuration = 20 * time.Millisecond

// FramesPerSecond is how many frames of FrameDuration make a second.
const FramesPerSecond = int(time.Second / FrameDuration)

// Encoder turns frames of mono PCM into packets of one codec. Each call's
// speaking side owns one: not safe for concurrent use.
type Encoder interface {
	// Rate is the sample rate of the PCM that Encode takes.
	Rate() int
	// Frame is how many samples Encode takes: FrameDuration at Rate.
	Frame() int
	// Encode encodes exactly Frame() samples into a new packet.
	Encode(pcm []int16) ([]byte, error)
}

// Decoder turns packets of one codec into mono PCM. Each call's listening
// side owns one: not safe for concurrent use.
type Decoder interface {
	// Rate is the sample rate of the PCM that Decode gives.
	Rate() int
	// Decode decodes one packet; the samples are valid until the next
	// call. A packet that is not of the codec is an error wrapping
	// ErrPacket, and the stream goes on.
	Decode(packet []byte) ([]int16, error)
}

// Codec makes the encoders and decoders of one audio format. It is the
// seam between a call, which speaks and hears PCM, and a front end, which
// chooses what travels on its wire (Opus for the Parley protocol and
// WebRTC; G.711 for telephony; PCM16 for the OpenAI Realtime protocol).
// Safe for concurrent use.
type Codec interface {
	// NewEncoder returns an encoder for PCM at rate if the codec can take
	// that rate itself, else at the codec's own rate (Encoder.Rate says
	// which; the caller resamples).
	NewEncoder(rate int) (Encoder, error)
	// NewDecoder returns a decoder to PCM at rate if the codec can give
	// that rate itself, else at the codec's own rate (Decoder.Rate).
	NewDecoder(rate int) (Decoder, error)
}
