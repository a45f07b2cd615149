package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The voice scenario over the OpenAI Realtime protocol (-proto realtime):
// each call appends 20 ms of PCM16 at 16 kHz (the input format it sets)
// every 20 ms, server VAD ends its turns, and the bot's audio comes as
// response.output_audio.delta events (PCM16 at 24 kHz). Measured per turn
// as the client sees it: its end of speech → first audio delta, and the
// gaps between deltas. The protocol has no latency event: the server's
// own figures are its parley_call_*_seconds histograms.

// speechPCM renders text with flite as 20 ms chunks of PCM16 at 16 kHz,
// and a chunk of silence.
func speechPCM(text string) (speech [][]byte, silence []byte, err error) {
	pcm, err := flitePCM(text)
	if err != nil {
		return nil, nil, err
	}
	n := fliteRate / 50
	for off := 0; off+n <= len(pcm); off += n {
		b := make([]byte, 2*n)
		for i, s := range pcm[off : off+n] {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
		}
		speech = append(speech, b)
	}
	return speech, make([]byte, 2*n), nil
}

type realtimeClient struct {
	ws *websocket.Conn
}

func (c *realtimeClient) Close() error { return c.ws.Close() }

// dialRealtime opens a Realtime session and sets its input to PCM16 at
// 16 kHz (the output stays the default, PCM16 at 24 kHz).
func dialRealtime(ctx context.Context, url string) (voiceClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, url+"?model=parley-load", nil)
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = ws.SetReadDeadline(time.Time{}) }()
	if err := ws.WriteJSON(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime",
		"audio": map[string]any{"input": map[string]any{"format": map[string]any{"type": "audio/pcm", "rate": 16000}}}}}); err != nil {
		ws.Close()
		return nil, err
	}
	for {
		var ev struct {
			Type  string
			Error struct{ Code, Message string }
		}
		if err := ws.ReadJSON(&ev); err != nil {
			ws.Close()
			return nil, err
		}
		switch ev.Type {
		case "session.updated":
			return &realtimeClient{ws: ws}, nil
		case "error":
			ws.Close()
			return nil, fmt.Errorf("session.update: %s %s", ev.Error.Code, ev.Error.Message)
		}
	}
}

// run speaks turn after turn until stop, as callClient.run does.
func (c *realtimeClient) run(stop time.Time, speech [][]byte, silence []byte) callResult {
	res := callResult{errors: map[string]int64{}}
	var mu sync.Mutex
	var endOfSpeech, lastFrame time.Time
	var gotFirst, replied bool
	done := make(chan struct{})
	go func() { // the reader; ends when the socket closes
		defer close(done)
		for {
			_, b, err := c.ws.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			var ev struct {
				Type  string
				Error struct{ Code string }
			}
			if json.Unmarshal(b, &ev) != nil {
				continue
			}
			mu.Lock()
			switch ev.Type {
			case "response.output_audio.delta":
				res.frames++
				if !endOfSpeech.IsZero() && !replied {
					if !gotFirst {
						gotFirst = true
						res.clientV2V = append(res.clientV2V, now.Sub(endOfSpeech))
					} else {
						gap := now.Sub(lastFrame)
						res.gaps = append(res.gaps, gap)
						if gap > underrunGap {
							res.under++
						}
					}
					lastFrame = now
				}
			case "response.done":
				if !endOfSpeech.IsZero() {
					replied = true
				}
			case "error":
				res.errors[ev.Error.Code]++
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	send := func(p []byte) bool {
		select {
		case <-tick.C:
		case <-done:
			res.disconnected = time.Now().Before(stop)
			return false
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return c.ws.WriteJSON(map[string]any{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(p)}) == nil
	}
	for time.Now().Before(stop) {
		for i := 0; i < 15; i++ { // 300 ms of silence before speaking
			if !send(silence) {
				return res
			}
		}
		for _, p := range speech {
			if !send(p) {
				return res
			}
		}
		mu.Lock()
		endOfSpeech, gotFirst, replied = time.Now(), false, false
		mu.Unlock()
		res.turns++
		wait := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			r := replied
			mu.Unlock()
			if r || time.Now().After(wait) {
				if !r {
					res.noReply++
				}
				break
			}
			if !send(silence) {
				return res
			}
		}
		for i := 0; i < 25; i++ {
			if !send(silence) {
				return res
			}
		}
		mu.Lock()
		endOfSpeech = time.Time{}
		mu.Unlock()
	}
	return res
}
