package twilio

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/signaling"
)

// inMsg is any message Twilio sends on a Media Stream; which part is set
// depends on Event. Only what the server uses is read: Twilio's counters
// (sequenceNumber, chunk, timestamp) are not, so that their type (strings
// today) cannot make a message unreadable.
type inMsg struct {
	Event     string     `json:"event"`
	StreamSid string     `json:"streamSid"`
	Start     *startBody `json:"start"`
	Media     *mediaBody `json:"media"`
	DTMF      *dtmfBody  `json:"dtmf"`
	Mark      *markBody  `json:"mark"`
}

type startBody struct {
	StreamSid        string                     `json:"streamSid"`
	AccountSid       string                     `json:"accountSid"`
	CallSid          string                     `json:"callSid"`
	Tracks           []string                   `json:"tracks"`
	CustomParameters map[string]json.RawMessage `json:"customParameters"`
	MediaFormat      mediaFormat                `json:"mediaFormat"`
}

type mediaFormat struct {
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sampleRate"`
	Channels   int    `json:"channels"`
}

type mediaBody struct {
	Track   string `json:"track"`
	Payload string `json:"payload"`
}

type dtmfBody struct {
	Digit string `json:"digit"`
}

type markBody struct {
	Name string `json:"name"`
}

// The only audio a stream may carry: Twilio's Media Streams are 8 kHz
// mu-law mono, both ways.
var wantFormat = mediaFormat{Encoding: "audio/x-mulaw", SampleRate: 8000, Channels: 1}

// formatProblem says what is wrong with a stream's media format, or "".
func formatProblem(f mediaFormat) string {
	if f == wantFormat {
		return ""
	}
	return fmt.Sprintf("media format %.40q at %d Hz, %d channels: only audio/x-mulaw at 8000 Hz, mono, is taken",
		f.Encoding, f.SampleRate, f.Channels)
}

// Messages to Twilio. sid is the stream's streamSid as a JSON string,
// quotes included (quoteSid): these are built for every 20 ms frame, so
// by appending, not by reflection.

// mediaMsg is {"event":"media","streamSid":…,"media":{"payload":…}}.
func mediaMsg(sid []byte, frame []byte) []byte {
	b := make([]byte, 0, 64+len(sid)+base64.StdEncoding.EncodedLen(len(frame)))
	b = append(b, `{"event":"media","streamSid":`...)
	b = append(b, sid...)
	b = append(b, `,"media":{"payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, frame)
	return append(b, `"}}`...)
}

// markMsg is {"event":"mark","streamSid":…,"mark":{"name":"<n>"}}: Twilio
// sends it back once the audio before it has been played.
func markMsg(sid []byte, n int64) []byte {
	b := make([]byte, 0, 64+len(sid))
	b = append(b, `{"event":"mark","streamSid":`...)
	b = append(b, sid...)
	b = append(b, `,"mark":{"name":"`...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, `"}}`...)
}

// clearMsg is {"event":"clear","streamSid":…}: Twilio drops the audio it
// has queued and returns its marks at once.
func clearMsg(sid []byte) []byte {
	b := make([]byte, 0, 40+len(sid))
	b = append(b, `{"event":"clear","streamSid":`...)
	b = append(b, sid...)
	return append(b, '}')
}

func quoteSid(sid string) []byte {
	b, _ := json.Marshal(sid) // a string: cannot fail
	return b
}

// CloseCode is a Media Stream's WebSocket close code for a reason. Twilio
// defines none of its own and reads none: these are the standard codes,
// for the logs of whoever looks.
func CloseCode(r signaling.Reason) int {
	switch r {
	case signaling.ReasonBye, signaling.ReasonClientClosed:
		return websocket.CloseNormalClosure // the call's stop
	case signaling.ReasonTooBig:
		return websocket.CloseMessageTooBig
	case signaling.ReasonUnsupported:
		return websocket.CloseUnsupportedData
	case signaling.ReasonTooManyErrors, signaling.ReasonUnauthorized:
		return websocket.ClosePolicyViolation
	case signaling.ReasonInternal, signaling.ReasonWriteFailed:
		return websocket.CloseInternalServerErr
	case signaling.ReasonShutdown:
		return websocket.CloseServiceRestart
	}
	return websocket.CloseGoingAway
}
