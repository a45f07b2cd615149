package main

import (
	"encoding/binary"
	"math"
	"sync"
	"time"

	"gopkg.in/hraban/opus.v2"
)

// A caller's echo path: a speaker phone, or a browser without echo
// cancellation, plays the bot's audio and its microphone picks it up. The
// caller decodes each of the bot's frames as it arrives (played at once,
// no jitter buffer), and mixes it, Gain of its level and Delay later, into
// its own microphone, which it then encodes live. A Gain of 0 does the
// same work with nothing mixed in, so that callers with and without an
// echo cost the load generator alike.

// echoRate is the caller's: its microphone (flite kal16) and its decoding
// of the bot's audio.
const echoRate = 16000

// echoBacklog bounds the bot's frames waiting to be heard back: more are
// a burst (the pacer's lead), and the oldest go.
const echoBacklog = 50

type echoFrame struct {
	due time.Time
	pcm []int16
}

// echoPath is one call's; heard runs on its reader, mix on its sender.
type echoPath struct {
	gain  float64
	delay time.Duration
	dec   *opus.Decoder // the reader's
	enc   *opus.Encoder // the sender's
	pcm   []int16       // the sender's scratch
	pkt   []byte        // the sender's scratch

	mu    sync.Mutex
	queue []echoFrame
}

// newEchoPath returns an echo path at gain (a ratio of amplitude) and
// delay.
func newEchoPath(gain float64, delay time.Duration) (*echoPath, error) {
	dec, err := opus.NewDecoder(echoRate, 1)
	if err != nil {
		return nil, err
	}
	enc, err := opus.NewEncoder(echoRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, err
	}
	// The lowest complexity: the load generator shares the server's cores.
	if err := enc.SetComplexity(0); err != nil {
		return nil, err
	}
	return &echoPath{gain: gain, delay: delay, dec: dec, enc: enc,
		pcm: make([]int16, echoRate/50), pkt: make([]byte, 1500)}, nil
}

// dbGain turns decibels into a ratio of amplitude (-6 dB: about a half).
func dbGain(db float64) float64 { return math.Pow(10, db/20) }

// heard takes one of the bot's Opus packets, played at now.
func (e *echoPath) heard(pkt []byte, now time.Time) {
	pcm := make([]int16, echoRate/50)
	n, err := e.dec.Decode(pkt, pcm)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) >= echoBacklog {
		e.queue = e.queue[1:]
	}
	e.queue = append(e.queue, echoFrame{due: now.Add(e.delay), pcm: pcm[:n]})
}

// flush drops the bot's frames not yet heard back: the client was told
// to drop its queued audio (an interruption).
func (e *echoPath) flush() {
	e.mu.Lock()
	e.queue = nil
	e.mu.Unlock()
}

// due returns the oldest of the bot's frames whose echo reaches the
// microphone by now, or nil: one a frame, as the speaker plays them.
func (e *echoPath) due(now time.Time) []int16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 || e.queue[0].due.After(now) {
		return nil
	}
	f := e.queue[0].pcm
	e.queue = e.queue[1:]
	return f
}

// mix takes the caller's own 20 ms of PCM16 (little-endian, 16 kHz), adds
// the echo due by now, and returns the Opus packet to send. The packet
// is the path's scratch, good until the next mix.
func (e *echoPath) mix(mic []byte, now time.Time) ([]byte, error) {
	echo := e.due(now)
	for i := range e.pcm {
		v := 0.0
		if 2*i+1 < len(mic) {
			v = float64(int16(binary.LittleEndian.Uint16(mic[2*i:])))
		}
		if i < len(echo) {
			v += e.gain * float64(echo[i])
		}
		e.pcm[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	n, err := e.enc.Encode(e.pcm, e.pkt)
	if err != nil {
		return nil, err
	}
	return e.pkt[:n], nil
}
