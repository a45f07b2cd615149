package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The phone scenario: N concurrent calls as Twilio makes them. Each asks
// the voice webhook for its TwiML, opens the Media Stream and speaks its
// line at real time, a media message of 8 kHz mu-law every 20 ms
// (silence, then pre-rendered speech, then silence until the bot has
// answered), and plays the bot's answer: it echoes each mark as Twilio
// does. Measured per turn, from the fake's side (the stream carries no
// latency event): the end of its speech → the bot's first media frame,
// the gaps between the bot's frames, and the server's pacer underruns
// (from /metrics).

type phoneStep struct {
	Calls       int              `json:"calls"`
	Seconds     float64          `json:"seconds"`
	Turns       int64            `json:"turns"`
	NoReply     int64            `json:"turns_without_reply"`
	ClientV2V   stats            `json:"client_end_of_speech_to_first_frame_ms"`
	Jitter      stats            `json:"frame_gap_minus_20ms_ms"`
	ClientUnder int64            `json:"client_underruns"` // gaps > 80 ms inside a reply
	PacerUnder  float64          `json:"server_pacer_underruns"`
	Frames      int64            `json:"bot_frames"`
	Clears      int64            `json:"clears"`
	Disconnects int64            `json:"disconnects"`
	ConnectFail int64            `json:"connect_failures"`
	Errors      map[string]int64 `json:"errors"`
	Server      *procStats       `json:"server"`
	CPUPerCall  float64          `json:"server_cpu_percent_per_call"`
}

type phoneRun struct {
	Stack  string      `json:"stack"`
	VAD    string      `json:"vad_stop"`
	Speech string      `json:"speech"`
	Steps  []phoneStep `json:"steps"`
}

// mulawFrames renders text with flite (kal16, 16 kHz), halves its rate
// (each pair of samples averaged: enough of a low-pass for the server's
// voice detector, which is all that hears it with the fake recogniser)
// and encodes it as 20 ms frames of G.711 mu-law; silence is one frame
// of zeros.
func mulawFrames(text string) (speech [][]byte, silence []byte, err error) {
	pcm, err := flitePCM(text)
	if err != nil {
		return nil, nil, err
	}
	var frame []byte
	for i := 0; i+1 < len(pcm); i += 2 {
		frame = append(frame, muLaw((int32(pcm[i])+int32(pcm[i+1]))/2))
		if len(frame) == 160 {
			speech, frame = append(speech, frame), nil
		}
	}
	silence = make([]byte, 160)
	for i := range silence {
		silence[i] = muLaw(0)
	}
	return speech, silence, nil
}

// muLaw is G.711 mu-law's code of a 16-bit sample: sign, a 3-bit segment
// and a 4-bit step, inverted.
func muLaw(v int32) byte {
	var sign byte
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, 32635) + 0x84
	seg := byte(0)
	for x := v >> 8; x > 0 && seg < 7; x >>= 1 {
		seg++
	}
	return ^(sign | seg<<4 | byte(v>>(seg+3))&0x0f)
}

// runPhone runs the calls in steps (one server for all of them), with
// the zero-cost speech fakes of the voice scenario's fake stack.
func runPhone(ctx context.Context, bin string, steps []int, dur, vadStop time.Duration) (*phoneRun, error) {
	const phrase = "what time is it"
	speech, silence, err := mulawFrames(phrase)
	if err != nil {
		return nil, err
	}
	redisURL, _, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stopRedis()
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := newUpstream(upstreamConfig{Transcript: phrase}).serve(uctx, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + up + "/v1"
	env := []string{"REDIS_URL=" + redisURL, "PARLEY_RATE_SESSION=0", "PARLEY_VAD_STOP=" + vadStop.String(),
		"PARLEY_LLM_SLOTS=256", "PARLEY_LLM_QUEUE=1024",
		"PARLEY_ASR=openai", "PARLEY_ASR_BASE_URL=" + base, "PARLEY_TTS=openai", "PARLEY_TTS_BASE_URL=" + base}
	addr, cmd, err := startParley(ctx, bin, env)
	if err != nil {
		return nil, err
	}
	defer stopParley(cmd)
	run := &phoneRun{Stack: "fake", VAD: vadStop.String(), Speech: fmt.Sprintf("%q, %d frames of 8 kHz mu-law", phrase, len(speech))}
	for _, n := range steps {
		if ctx.Err() != nil {
			break
		}
		st := phoneStepRun(ctx, addr, cmd.Process.Pid, n, dur, speech, silence)
		run.Steps = append(run.Steps, st)
		fmt.Printf("%4d phone calls: %d turns (%d unanswered); end of speech → first frame p50 %.0f p99 %.0f ms; frame gaps p99 %+.1f ms; client underruns %d, pacer underruns %.0f; clears %d; CPU %.0f%% (%.2f%% per call)\n",
			n, st.Turns, st.NoReply, st.ClientV2V.P50, st.ClientV2V.P99, st.Jitter.P99, st.ClientUnder, st.PacerUnder, st.Clears, st.Server.CPUPercent, st.CPUPerCall)
	}
	return run, nil
}

func phoneStepRun(ctx context.Context, addr string, pid, calls int, dur time.Duration, speech [][]byte, silence []byte) phoneStep {
	var (
		mu                    sync.Mutex
		v2v, gaps             []time.Duration
		turns, noReply, under atomic.Int64
		frames, clears        atomic.Int64
		disc, cfail           atomic.Int64
		errs                  = map[string]int64{}
	)
	metricsURL := "http://" + addr + "/metrics"
	pacer0 := metricSum(metricsURL, "parley_media_pacer_underruns_total")
	measure := watch(pid)
	t0 := time.Now()
	stop := t0.Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() { // one call; ends at stop
			defer wg.Done()
			time.Sleep(time.Duration(i) * 2 * time.Second / time.Duration(calls)) // the starts spread
			c, err := dialPhone(ctx, addr, i)
			if err != nil {
				cfail.Add(1)
				mu.Lock()
				errs[err.Error()]++
				mu.Unlock()
				return
			}
			defer c.ws.Close()
			res := c.run(stop, speech, silence)
			turns.Add(res.turns)
			noReply.Add(res.noReply)
			under.Add(res.under)
			frames.Add(res.frames)
			clears.Add(res.clears)
			if res.disconnected {
				disc.Add(1)
			}
			mu.Lock()
			v2v = append(v2v, res.clientV2V...)
			gaps = append(gaps, res.gaps...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	srv := measure()
	st := phoneStep{
		Calls: calls, Seconds: round(time.Since(t0).Seconds()), Turns: turns.Load(), NoReply: noReply.Load(),
		ClientV2V: summarize(v2v, 0), Jitter: summarize(gaps, frameDur), ClientUnder: under.Load(),
		PacerUnder: metricSum(metricsURL, "parley_media_pacer_underruns_total") - pacer0,
		Frames:     frames.Load(), Clears: clears.Load(), Disconnects: disc.Load(), ConnectFail: cfail.Load(), Errors: errs,
		Server: srv,
	}
	if srv != nil && calls > 0 {
		st.CPUPerCall = round(srv.CPUPercent / float64(calls))
	}
	return st
}

type phoneCall struct {
	ws       *websocket.Conn
	sid      []byte // the streamSid, as JSON
	callSid  string
	writeMu  sync.Mutex
	sequence int
}

// dialPhone does what Twilio does when the number is called: the voice
// webhook, then the Media Stream its TwiML names (on this address: the
// TwiML says wss://, and the load generator speaks plain ws to loopback),
// then connected and start.
func dialPhone(ctx context.Context, addr string, n int) (*phoneCall, error) {
	callSid := fmt.Sprintf("CA%032x", time.Now().UnixNano()+int64(n))
	resp, err := http.PostForm("http://"+addr+"/twilio/voice", url.Values{"CallSid": {callSid}, "From": {"+15550100"}, "To": {"+15550199"}})
	if err != nil {
		return nil, fmt.Errorf("webhook: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("webhook: %s", resp.Status)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, "ws://"+addr+"/twilio/media", nil)
	if err != nil {
		return nil, fmt.Errorf("stream: %v", err)
	}
	sid := fmt.Sprintf("MZ%032x", time.Now().UnixNano()+int64(n))
	c := &phoneCall{ws: ws, callSid: callSid}
	c.sid, _ = json.Marshal(sid)
	if err := c.send(map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"}); err != nil {
		ws.Close()
		return nil, err
	}
	err = c.send(map[string]any{"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": map[string]any{
		"streamSid": sid, "callSid": callSid, "accountSid": "AC0", "tracks": []string{"inbound"},
		"customParameters": map[string]string{"CallSid": callSid},
		"mediaFormat":      map[string]any{"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
	if err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

func (c *phoneCall) send(v any) error {
	b, _ := json.Marshal(v)
	return c.write(b)
}

func (c *phoneCall) write(b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// media is a media message of one frame, as Twilio relays the line.
func (c *phoneCall) media(frame []byte) []byte {
	c.sequence++
	b := make([]byte, 0, 400)
	b = append(b, `{"event":"media","sequenceNumber":"`...)
	b = strconv.AppendInt(b, int64(c.sequence), 10)
	b = append(b, `","streamSid":`...)
	b = append(b, c.sid...)
	b = append(b, `,"media":{"track":"inbound","chunk":"`...)
	b = strconv.AppendInt(b, int64(c.sequence), 10)
	b = append(b, `","timestamp":"`...)
	b = strconv.AppendInt(b, int64(c.sequence)*20, 10)
	b = append(b, `","payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, frame)
	return append(b, `"}}`...)
}

type phoneResult struct {
	turns, noReply, under, frames, clears int64
	clientV2V, gaps                       []time.Duration
	disconnected                          bool
}

// replyOver: a pause this long in the bot's frames ends its reply (the
// stream has no reply.done).
const replyOver = 500 * time.Millisecond

// run speaks turn after turn until stop, a frame every 20 ms, and echoes
// the bot's marks as it receives them (played at once: its buffer is the
// pacer's lead); then it says stop.
func (c *phoneCall) run(stop time.Time, speech [][]byte, silence []byte) phoneResult {
	res := phoneResult{}
	var mu sync.Mutex
	var endOfSpeech, lastFrame time.Time
	var gotFirst bool
	done := make(chan struct{})
	go func() { // the reader; ends when the socket closes
		defer close(done)
		for {
			_, b, err := c.ws.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Event string
				Mark  struct{ Name string }
			}
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			now := time.Now()
			switch m.Event {
			case "media":
				mu.Lock()
				res.frames++
				if !endOfSpeech.IsZero() {
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
				}
				lastFrame = now
				mu.Unlock()
			case "mark":
				echo, _ := json.Marshal(map[string]any{"event": "mark", "streamSid": json.RawMessage(c.sid), "mark": map[string]string{"name": m.Mark.Name}})
				_ = c.write(echo)
			case "clear":
				mu.Lock()
				res.clears++
				mu.Unlock()
			}
		}
	}()
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	send := func(f []byte) bool {
		select {
		case <-tick.C:
		case <-done:
			res.disconnected = time.Now().Before(stop)
			return false
		}
		return c.write(c.media(f)) == nil
	}
	for time.Now().Before(stop) {
		for i := 0; i < 15; i++ { // 300 ms of silence before speaking
			if !send(silence) {
				return res
			}
		}
		for _, f := range speech {
			if !send(f) {
				return res
			}
		}
		mu.Lock()
		endOfSpeech, gotFirst = time.Now(), false
		mu.Unlock()
		res.turns++
		// Silence until the reply is over (or 10 s), then a pause.
		wait := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			over := gotFirst && time.Since(lastFrame) > replyOver
			got := gotFirst
			mu.Unlock()
			if over || time.Now().After(wait) {
				if !got {
					res.noReply++
				}
				break
			}
			if !send(silence) {
				return res
			}
		}
		mu.Lock()
		endOfSpeech = time.Time{}
		mu.Unlock()
		for i := 0; i < 25; i++ {
			if !send(silence) {
				return res
			}
		}
	}
	_ = c.send(map[string]any{"event": "stop", "streamSid": json.RawMessage(c.sid), "stop": map[string]string{"callSid": c.callSid}})
	return res
}
