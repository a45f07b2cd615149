package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"gopkg.in/hraban/opus.v2"
)

// The voice scenario: N calls over the WebSocket audio channel. Each call
// sends a microphone's worth of Opus packets at real time (silence, then
// pre-encoded speech, then silence until the bot has answered) and receives
// the bot's audio. Measured per turn: the server's own end of speech →
// first frame (its latency event), the client's end of speech → first
// frame, the gaps between the bot's frames, and the server's pacer
// underruns (from /metrics).

const frameDur = 20 * time.Millisecond

// underrunGap: a gap between two of the bot's frames longer than this
// empties a 3-frame jitter buffer (the demo page's): the listener hears a
// dropout.
const underrunGap = frameDur + 3*frameDur

type voiceStep struct {
	Calls       int              `json:"calls"`
	Seconds     float64          `json:"seconds"`
	Turns       int64            `json:"turns"`
	NoReply     int64            `json:"turns_without_reply"`
	ServerMs    stats            `json:"server_ms"`         // the latency event: the end-of-turn decision → first frame
	V2V         stats            `json:"voice_to_voice_ms"` // the latency event: end of voiced audio → first frame
	ClientV2V   stats            `json:"client_end_of_speech_to_first_frame_ms"`
	Jitter      stats            `json:"frame_gap_minus_20ms_ms"`
	ClientUnder int64            `json:"client_underruns"` // gaps > 80 ms inside a reply
	PacerUnder  float64          `json:"server_pacer_underruns"`
	Frames      int64            `json:"bot_frames"`
	Interrupted int64            `json:"interrupted_replies"`
	Disconnects int64            `json:"disconnects"`
	ConnectFail int64            `json:"connect_failures"`
	Errors      map[string]int64 `json:"errors_by_code"`
	Server      *procStats       `json:"server"`
	// Load: the load generator's own process (it encodes and decodes every
	// call's Opus on the same cores: what bounds a step may be it).
	Load       *procStats `json:"load_generator,omitempty"`
	CPUPerCall float64    `json:"server_cpu_percent_per_call"`
}

type voiceRun struct {
	Stack  string      `json:"stack"`
	Proto  string      `json:"protocol"`
	VAD    string      `json:"vad_stop"`
	Speech string      `json:"speech"`
	Steps  []voiceStep `json:"steps"`
}

// speechPackets renders text with flite (voice kal16, 16 kHz) and encodes
// it as 20 ms Opus packets; silence is one encoded packet of zeros.
func speechPackets(text string) (speech [][]byte, silence []byte, err error) {
	pcm, err := flitePCM(text)
	if err != nil {
		return nil, nil, err
	}
	rate := fliteRate
	enc, err := opus.NewEncoder(rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, nil, err
	}
	n := rate / 50
	buf := make([]byte, 1500)
	for off := 0; off+n <= len(pcm); off += n {
		k, err := enc.Encode(pcm[off:off+n], buf)
		if err != nil {
			return nil, nil, err
		}
		speech = append(speech, append([]byte(nil), buf[:k]...))
	}
	k, err := enc.Encode(make([]int16, n), buf)
	if err != nil {
		return nil, nil, err
	}
	return speech, append([]byte(nil), buf[:k]...), nil
}

// fliteRate is the rate of flite's kal16 voice.
const fliteRate = 16000

// flitePCM is text spoken by flite's kal16 voice, at fliteRate.
func flitePCM(text string) ([]int16, error) {
	dir, err := os.MkdirTemp("", "parley-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	wav := filepath.Join(dir, "speech.wav")
	if out, err := exec.Command("flite", "-voice", "kal16", "-t", text, "-o", wav).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("flite (apt install flite): %v: %s", err, out)
	}
	pcm, rate, err := readWAV(wav)
	if err != nil {
		return nil, err
	}
	if rate != fliteRate {
		return nil, fmt.Errorf("flite kal16 spoke at %d Hz, not %d", rate, fliteRate)
	}
	return pcm, nil
}

// readWAV reads a 16-bit mono PCM WAV file.
func readWAV(path string) ([]int16, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New(path + ": not a WAV file")
	}
	rate := 0
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		body := b[p+8 : min(len(b), p+8+size)]
		switch id {
		case "fmt ":
			if len(body) < 16 || binary.LittleEndian.Uint16(body[2:]) != 1 || binary.LittleEndian.Uint16(body[14:]) != 16 {
				return nil, 0, errors.New(path + ": want 16-bit mono PCM")
			}
			rate = int(binary.LittleEndian.Uint32(body[4:]))
		case "data":
			pcm := make([]int16, len(body)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return pcm, rate, nil
		}
		p += 8 + size + size%2
	}
	return nil, 0, errors.New(path + ": no data chunk")
}

// runVoice runs the calls in steps (one server for all of them), over
// the Parley protocol (Opus) or the Realtime one (PCM16).
func runVoice(ctx context.Context, bin, stack, proto string, steps []int, dur time.Duration, vadStop time.Duration) (*voiceRun, error) {
	const phrase = "what time is it"
	speech, silence, err := speechPackets(phrase)
	path, dial := "/ws", dialCall
	if proto == "realtime" {
		speech, silence, err = speechPCM(phrase)
		path, dial = "/v1/realtime", dialRealtime
	} else if proto != "parley" {
		return nil, fmt.Errorf("-proto %q: parley or realtime", proto)
	}
	if err != nil {
		return nil, err
	}
	maxCalls := 0
	for _, n := range steps {
		maxCalls = max(maxCalls, n)
	}
	env, stopEnv, err := voiceEnv(ctx, stack, phrase, vadStop, maxCalls)
	if err != nil {
		return nil, err
	}
	defer stopEnv()
	addr, cmd, err := startParley(ctx, bin, env)
	if err != nil {
		return nil, err
	}
	defer stopParley(cmd)
	run := &voiceRun{Stack: stack, Proto: proto, VAD: vadStop.String(), Speech: fmt.Sprintf("%q, %d frames", phrase, len(speech))}
	for _, n := range steps {
		if ctx.Err() != nil {
			break
		}
		st := voiceStepRun(ctx, dial, "ws://"+addr+path, "http://"+addr+"/metrics", cmd.Process.Pid, n, dur, speech, silence)
		run.Steps = append(run.Steps, st)
		fmt.Printf("%4d calls: %d turns (%d unanswered); server (decision → first frame) %s, voice-to-voice %s; client end of speech → first frame p50 %.0f p99 %.0f ms; client underruns %d, pacer underruns %.0f; CPU %.0f%% (%.2f%% per call), load generator %.0f%%\n",
			n, st.Turns, st.NoReply, serverSide(st.ServerMs), serverSide(st.V2V), st.ClientV2V.P50, st.ClientV2V.P99, st.ClientUnder, st.PacerUnder, st.Server.CPUPercent, st.CPUPerCall, st.Load.CPUPercent)
	}
	return run, nil
}

// serverSide prints a latency the server reports in its latency event;
// a protocol without one (the OpenAI Realtime protocol) has no samples,
// which is not 0 ms.
func serverSide(s stats) string {
	if s.N == 0 {
		return "not reported by the protocol"
	}
	return fmt.Sprintf("p50 %.0f p99 %.0f ms", s.P50, s.P99)
}

// voiceClient is one call of a protocol: it speaks until stop.
type voiceClient interface {
	run(stop time.Time, speech [][]byte, silence []byte) callResult
	Close() error
}

func voiceStepRun(ctx context.Context, dial func(context.Context, string) (voiceClient, error), url, metricsURL string, pid, calls int, dur time.Duration, speech [][]byte, silence []byte) voiceStep {
	var (
		mu             sync.Mutex
		serverMs, v2v  []time.Duration
		clientV2V      []time.Duration
		gaps           []time.Duration
		turns, noReply atomic.Int64
		under, frames  atomic.Int64
		interrupted    atomic.Int64
		disc, cfail    atomic.Int64
		errs           = map[string]int64{}
	)
	pacer0 := metricSum(metricsURL, "parley_media_pacer_underruns_total")
	measure, measureSelf := watch(pid), watch(os.Getpid())
	t0 := time.Now()
	stop := t0.Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() { // one call; ends at stop
			defer wg.Done()
			// Spread the calls' starts so their turns do not all align.
			time.Sleep(time.Duration(i) * 2 * time.Second / time.Duration(calls))
			c, err := dial(ctx, url)
			if err != nil {
				cfail.Add(1)
				return
			}
			defer c.Close()
			res := c.run(stop, speech, silence)
			turns.Add(res.turns)
			noReply.Add(res.noReply)
			under.Add(res.under)
			frames.Add(res.frames)
			interrupted.Add(res.interrupted)
			if res.disconnected {
				disc.Add(1)
			}
			mu.Lock()
			serverMs = append(serverMs, res.serverMs...)
			v2v = append(v2v, res.v2v...)
			clientV2V = append(clientV2V, res.clientV2V...)
			gaps = append(gaps, res.gaps...)
			for k, v := range res.errors {
				errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	srv := measure()
	st := voiceStep{
		Calls: calls, Seconds: round(time.Since(t0).Seconds()), Turns: turns.Load(), NoReply: noReply.Load(),
		ServerMs: summarize(serverMs, 0), V2V: summarize(v2v, 0), ClientV2V: summarize(clientV2V, 0), Jitter: summarize(gaps, frameDur),
		ClientUnder: under.Load(), Frames: frames.Load(), Interrupted: interrupted.Load(), Disconnects: disc.Load(), ConnectFail: cfail.Load(), Errors: errs,
		PacerUnder: metricSum(metricsURL, "parley_media_pacer_underruns_total") - pacer0,
		Server:     srv, Load: measureSelf(),
	}
	if srv != nil && calls > 0 {
		st.CPUPerCall = round(srv.CPUPercent / float64(calls))
	}
	return st
}

type callClient struct {
	ws   *websocket.Conn
	echo *echoPath // nil: the frames given are Opus packets, sent as they are
}

func (c *callClient) Close() error { return c.ws.Close() }

func dialCall(ctx context.Context, url string) (voiceClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	if err := ws.WriteJSON(map[string]any{"type": "hello", "audio": map[string]string{"transport": "ws", "codec": "opus"}}); err != nil {
		ws.Close()
		return nil, err
	}
	var s struct{ Type, Code, Message string }
	if err := ws.ReadJSON(&s); err != nil || s.Type != "session" {
		ws.Close()
		return nil, fmt.Errorf("hello: %v %s %s", err, s.Code, s.Message)
	}
	return &callClient{ws: ws}, nil
}

type callResult struct {
	turns, noReply, under, frames int64
	interrupted                   int64 // replies cut (the interrupted event)
	serverMs, v2v, clientV2V      []time.Duration
	gaps                          []time.Duration
	errors                        map[string]int64
	disconnected                  bool
}

// run speaks turn after turn until stop: the microphone never pauses (a
// packet every 20 ms), as a real one does not. The frames given are Opus
// packets, or with an echo path 20 ms of PCM16 at 16 kHz (speechPCM),
// encoded as they go.
func (c *callClient) run(stop time.Time, speech [][]byte, silence []byte) callResult {
	res := callResult{errors: map[string]int64{}}
	var mu sync.Mutex
	var endOfSpeech, lastFrame time.Time
	var gotFirst, replied bool
	done := make(chan struct{})
	go func() { // the reader; ends when the socket closes
		defer close(done)
		for {
			kind, b, err := c.ws.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			if kind == websocket.BinaryMessage && c.echo != nil {
				c.echo.heard(b, now)
			}
			mu.Lock()
			if kind == websocket.BinaryMessage {
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
				mu.Unlock()
				continue
			}
			var ev struct {
				Type, Code       string
				Server           *int64 `json:"server_ms"`
				VoiceToVoice     *int64 `json:"voice_to_voice_ms"`
				Turn             int64
				Final, Interrupt bool
			}
			if json.Unmarshal(b, &ev) == nil {
				switch ev.Type {
				case "latency":
					if ev.Server != nil {
						res.serverMs = append(res.serverMs, time.Duration(*ev.Server)*time.Millisecond)
					}
					if ev.VoiceToVoice != nil {
						res.v2v = append(res.v2v, time.Duration(*ev.VoiceToVoice)*time.Millisecond)
					}
				case "reply.done":
					if !endOfSpeech.IsZero() {
						replied = true
					}
				case "interrupted":
					res.interrupted++
					if c.echo != nil {
						c.echo.flush()
					}
				case "error":
					res.errors[ev.Code]++
				}
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
		if c.echo != nil { // p is PCM16: the caller's own voice, the echo mixed in
			var err error
			if p, err = c.echo.mix(p, time.Now()); err != nil {
				return false
			}
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return c.ws.WriteMessage(websocket.BinaryMessage, p) == nil
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
		// Silence until the reply is done (or 10 s), then a pause.
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
	_ = c.ws.WriteJSON(map[string]any{"type": "bye"})
	return res
}

// metricSum adds up a Prometheus counter's samples from a /metrics page.
func metricSum(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name) && (len(l) == len(name) || l[len(name)] == ' ' || l[len(name)] == '{') {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// voiceEnv starts redis-server and the stack's providers (the fake
// upstream runs in this process) and returns the server's environment for
// them; stop ends them.
func voiceEnv(ctx context.Context, stack, phrase string, vadStop time.Duration, maxCalls int) (env []string, stop func(), err error) {
	redisURL, _, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, nil, err
	}
	env = []string{"REDIS_URL=" + redisURL, "PARLEY_RATE_SESSION=0", "PARLEY_VAD_STOP=" + vadStop.String(),
		"PARLEY_LLM_SLOTS=256", "PARLEY_LLM_QUEUE=1024"}
	switch stack {
	case "fake":
		uctx, cancel := context.WithCancel(ctx)
		addr, err := newUpstream(upstreamConfig{Transcript: phrase}).serve(uctx, "127.0.0.1:0")
		if err != nil {
			cancel()
			stopRedis()
			return nil, nil, err
		}
		base := "http://" + addr + "/v1"
		env = append(env, "PARLEY_ASR=openai", "PARLEY_ASR_BASE_URL="+base, "PARLEY_TTS=openai", "PARLEY_TTS_BASE_URL="+base)
		return env, func() { cancel(); stopRedis() }, nil
	case "offline":
		env = append(env, "PARLEY_ASR=sphinx", "PARLEY_TTS=flite", "PARLEY_ASR_DECODERS="+strconv.Itoa(maxCalls))
		return env, stopRedis, nil
	default:
		stopRedis()
		return nil, nil, fmt.Errorf("-stack %q: fake or offline", stack)
	}
}
