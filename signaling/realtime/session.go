package realtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/endpoint"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/tools"
)

// format is an audio format of the session: PCM16 at a rate, or G.711.
type format struct {
	Type string // "audio/pcm", "audio/pcmu", "audio/pcma"
	Rate int    // audio/pcm's; G.711 is 8000
}

var pcm24 = format{Type: "audio/pcm", Rate: 24000}

// bytesPerMs is how many bytes a millisecond of the format takes.
func (f format) bytesPerMs() float64 {
	if f.Type == "audio/pcm" {
		return float64(2*f.Rate) / 1000
	}
	return 8
}

// ga is the format as the GA session shows it.
func (f format) ga() any {
	if f.Type == "audio/pcm" {
		return map[string]any{"type": f.Type, "rate": f.Rate}
	}
	return map[string]any{"type": f.Type}
}

// betaName is the format as the beta session names it (PCM16 at 24 kHz
// only: beta has no rate).
func (f format) betaName() string {
	switch f.Type {
	case "audio/pcmu":
		return "g711_ulaw"
	case "audio/pcma":
		return "g711_alaw"
	}
	return "pcm16"
}

// parseFormat reads a format in either shape: GA's {type, rate} or beta's
// name.
func parseFormat(raw json.RawMessage) (format, string) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		switch name {
		case "pcm16":
			return pcm24, ""
		case "g711_ulaw":
			return format{Type: "audio/pcmu", Rate: 8000}, ""
		case "g711_alaw":
			return format{Type: "audio/pcma", Rate: 8000}, ""
		}
		return format{}, fmt.Sprintf("audio format %q: use pcm16, g711_ulaw or g711_alaw", clip(name, 30))
	}
	var f struct {
		Type string `json:"type"`
		Rate int    `json:"rate"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return format{}, "an audio format is {\"type\": \"audio/pcm\", \"rate\": 24000}, {\"type\": \"audio/pcmu\"} or {\"type\": \"audio/pcma\"}"
	}
	switch f.Type {
	case "audio/pcm":
		if f.Rate == 0 {
			f.Rate = 24000
		}
		if f.Rate < 8000 || f.Rate > 48000 {
			return format{}, fmt.Sprintf("audio/pcm at %d Hz: Parley takes 8000 to 48000 Hz", f.Rate)
		}
		return format{Type: f.Type, Rate: f.Rate}, ""
	case "audio/pcmu", "audio/pcma":
		return format{Type: f.Type, Rate: 8000}, ""
	}
	return format{}, fmt.Sprintf("audio format type %q: use audio/pcm, audio/pcmu or audio/pcma", clip(f.Type, 30))
}

// detection is the session's turn detection; nil in conf means none (the
// client commits).
type detection struct {
	Type              string  // server_vad or semantic_vad
	Threshold         float64 // server_vad's, 0 to 1
	PrefixPaddingMs   int
	SilenceDurationMs int
	Eagerness         string // semantic_vad's
	CreateResponse    bool
	InterruptResponse bool
	IdleTimeoutMs     *int
}

// conf is a connection's Realtime session: what session.created and
// session.updated show, and what the connection acts on.
type conf struct {
	ID            string
	Model         string
	Instructions  string
	Tools         []llm.Tool
	ServerTools   *[]string       // from the tools' mcp entries; nil: none, so all the server's tools
	rawTools      json.RawMessage // as the client sent them, echoed
	ToolChoice    json.RawMessage // "auto", "none", "required" or {"type":"function","name":…}
	Modalities    []string        // ["audio"] or ["text"]
	In, Out       format
	Voice         string
	Speed         float64
	Turns         *detection
	Transcription json.RawMessage // null, or the client's {model, language, prompt}
	Noise         json.RawMessage
	MaxTokens     json.RawMessage
	Tracing       json.RawMessage
}

// defaults for a new session: what the server does with no settings.
func newConf(id, model string, serverStop, serverPre time.Duration) conf {
	if model == "" {
		model = "parley"
	}
	return conf{
		ID: "sess_" + id, Model: model, Modalities: []string{"audio"}, In: pcm24, Out: pcm24,
		Voice: "default", Speed: 1, ToolChoice: json.RawMessage(`"auto"`),
		Turns: &detection{Type: "server_vad", Threshold: 0.5, PrefixPaddingMs: int(serverPre.Milliseconds()),
			SilenceDurationMs: int(serverStop.Milliseconds()), CreateResponse: true, InterruptResponse: true},
		Transcription: json.RawMessage("null"), Noise: json.RawMessage("null"),
		MaxTokens: json.RawMessage(`"inf"`), Tracing: json.RawMessage("null"),
	}
}

func (c *conf) audio() bool {
	for _, m := range c.Modalities {
		if m == "audio" {
			return true
		}
	}
	return false
}

func (c *conf) transcribe() bool { return !isNull(c.Transcription) }

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func (d *detection) wire() any {
	if d == nil {
		return nil
	}
	m := map[string]any{"type": d.Type, "create_response": d.CreateResponse, "interrupt_response": d.InterruptResponse}
	if d.Type == "semantic_vad" {
		m["eagerness"] = d.Eagerness
		return m
	}
	m["threshold"] = d.Threshold
	m["prefix_padding_ms"] = d.PrefixPaddingMs
	m["silence_duration_ms"] = d.SilenceDurationMs
	m["idle_timeout_ms"] = d.IdleTimeoutMs
	return m
}

func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(def)
	}
	return raw
}

// wire is the session object, in the GA or the beta shape.
func (c *conf) wire(beta bool) any {
	tools := rawOr(c.rawTools, "[]")
	if beta {
		mods := []string{"text"}
		if c.audio() {
			mods = []string{"audio", "text"}
		}
		return map[string]any{
			"id": c.ID, "object": "realtime.session", "model": c.Model, "modalities": mods,
			"instructions": c.Instructions, "voice": c.Voice,
			"input_audio_format": c.In.betaName(), "output_audio_format": c.Out.betaName(),
			"input_audio_transcription": rawOr(c.Transcription, "null"), "turn_detection": c.Turns.wire(),
			"tools": tools, "tool_choice": c.ToolChoice, "temperature": 0.8,
			"max_response_output_tokens": rawOr(c.MaxTokens, `"inf"`),
		}
	}
	return map[string]any{
		"type": "realtime", "object": "realtime.session", "id": c.ID, "model": c.Model,
		"output_modalities": c.Modalities, "instructions": c.Instructions,
		"tools": tools, "tool_choice": c.ToolChoice, "max_output_tokens": rawOr(c.MaxTokens, `"inf"`),
		"tracing": rawOr(c.Tracing, "null"),
		"audio": map[string]any{
			"input": map[string]any{"format": c.In.ga(), "transcription": rawOr(c.Transcription, "null"),
				"noise_reduction": rawOr(c.Noise, "null"), "turn_detection": c.Turns.wire()},
			"output": map[string]any{"format": c.Out.ga(), "voice": c.Voice, "speed": c.Speed},
		},
	}
}

// fields is a JSON object's fields, undecoded.
type fields map[string]json.RawMessage

// update applies a session.update's session (GA or beta names, either
// way): only the fields it names change, unknown ones are ignored. It
// says what is wrong, and with which parameter, or "".
// box is the server's own tools, which the tools' mcp entries name.
func (c *conf) update(raw json.RawMessage, serverStop, serverPre time.Duration, box tools.Toolbox) (param, bad string) {
	var f fields
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return "session", "session must be an object"
	}
	next := *c
	steps := []func(fields) (string, string){
		next.updateText, func(f fields) (string, string) { return next.updateTools(f, box) },
		func(f fields) (string, string) { return next.updateAudio(f, serverStop, serverPre) },
	}
	for _, step := range steps {
		if p, b := step(f); b != "" {
			return p, b
		}
	}
	*c = next
	return "", ""
}

func (c *conf) updateText(f fields) (string, string) {
	if v, ok := f["instructions"]; ok && !isNull(v) {
		if json.Unmarshal(v, &c.Instructions) != nil {
			return "session.instructions", "instructions must be a string"
		}
	}
	if v, ok := f["model"]; ok && !isNull(v) {
		_ = json.Unmarshal(v, &c.Model) // echoed only: Parley's model is the server's
	}
	for _, name := range []string{"output_modalities", "modalities"} {
		v, ok := f[name]
		if !ok || isNull(v) {
			continue
		}
		var mods []string
		if json.Unmarshal(v, &mods) != nil || len(mods) == 0 {
			return "session." + name, name + ` must be ["audio"] or ["text"]`
		}
		c.Modalities = []string{"text"}
		for _, m := range mods {
			switch m {
			case "audio":
				c.Modalities = []string{"audio"}
			case "text":
			default:
				return "session." + name, fmt.Sprintf("modality %q: use audio or text", clip(m, 20))
			}
		}
	}
	for _, name := range []string{"max_output_tokens", "max_response_output_tokens"} {
		if v, ok := f[name]; ok {
			c.MaxTokens = v
		}
	}
	if v, ok := f["tracing"]; ok {
		c.Tracing = v
	}
	return "", ""
}

func (c *conf) updateTools(f fields, box tools.Toolbox) (string, string) {
	if v, ok := f["tools"]; ok {
		client, servers, bad := parseTools(v)
		if bad != "" {
			return "session.tools", bad
		}
		sel, bad := selectServers(servers, box)
		if bad != "" {
			return "session.tools", bad
		}
		c.Tools, c.ServerTools, c.rawTools = client, sel, v
		if isNull(v) {
			c.rawTools = nil
		}
	}
	if v, ok := f["tool_choice"]; ok && !isNull(v) {
		if _, bad := toolChoice(v); bad != "" {
			return "session.tool_choice", bad
		}
		c.ToolChoice = v
	}
	return "", ""
}

// updateAudio applies the audio fields: GA's audio.input / audio.output,
// or beta's flat ones.
func (c *conf) updateAudio(f fields, serverStop, serverPre time.Duration) (string, string) {
	var in, out fields
	if v, ok := f["audio"]; ok && !isNull(v) {
		var a struct {
			Input  fields `json:"input"`
			Output fields `json:"output"`
		}
		if json.Unmarshal(v, &a) != nil {
			return "session.audio", "audio must be {\"input\": {…}, \"output\": {…}}"
		}
		in, out = a.Input, a.Output
	}
	if in == nil {
		in = fields{}
	}
	if out == nil {
		out = fields{}
	}
	// Beta's names, mapped onto GA's.
	for beta, ga := range map[string][2]string{
		"input_audio_format": {"in", "format"}, "output_audio_format": {"out", "format"},
		"turn_detection": {"in", "turn_detection"}, "input_audio_transcription": {"in", "transcription"},
		"voice": {"out", "voice"},
	} {
		if v, ok := f[beta]; ok {
			if ga[0] == "in" {
				in[ga[1]] = v
			} else {
				out[ga[1]] = v
			}
		}
	}
	if v, ok := in["format"]; ok && !isNull(v) {
		fm, bad := parseFormat(v)
		if bad != "" {
			return "session.audio.input.format", bad
		}
		c.In = fm
	}
	if v, ok := out["format"]; ok && !isNull(v) {
		fm, bad := parseFormat(v)
		if bad != "" {
			return "session.audio.output.format", bad
		}
		c.Out = fm
	}
	if v, ok := out["voice"]; ok && !isNull(v) {
		_ = json.Unmarshal(v, &c.Voice)
	}
	if v, ok := out["speed"]; ok && !isNull(v) {
		_ = json.Unmarshal(v, &c.Speed)
	}
	if v, ok := in["transcription"]; ok {
		c.Transcription = v
	}
	if v, ok := in["noise_reduction"]; ok {
		c.Noise = v
	}
	if v, ok := in["turn_detection"]; ok {
		d, bad := parseDetection(v, serverStop, serverPre)
		if bad != "" {
			return "session.audio.input.turn_detection", bad
		}
		c.Turns = d
	}
	return "", ""
}

// parseDetection reads a turn_detection: null (the client commits),
// server_vad or semantic_vad; fields left out take the server's values.
func parseDetection(raw json.RawMessage, serverStop, serverPre time.Duration) (*detection, string) {
	if isNull(raw) {
		return nil, ""
	}
	var w struct {
		Type              string   `json:"type"`
		Threshold         *float64 `json:"threshold"`
		PrefixPaddingMs   *int     `json:"prefix_padding_ms"`
		SilenceDurationMs *int     `json:"silence_duration_ms"`
		Eagerness         string   `json:"eagerness"`
		CreateResponse    *bool    `json:"create_response"`
		InterruptResponse *bool    `json:"interrupt_response"`
		IdleTimeoutMs     *int     `json:"idle_timeout_ms"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, "turn_detection must be null or {\"type\": \"server_vad\" | \"semantic_vad\", …}"
	}
	d := &detection{Type: w.Type, Threshold: 0.5, PrefixPaddingMs: int(serverPre.Milliseconds()),
		SilenceDurationMs: int(serverStop.Milliseconds()), CreateResponse: true, InterruptResponse: true,
		IdleTimeoutMs: w.IdleTimeoutMs}
	switch w.Type {
	case "server_vad":
	case "semantic_vad":
		d.Eagerness = "auto"
		switch w.Eagerness {
		case "", "auto":
		case "low", "medium", "high":
			d.Eagerness = w.Eagerness
		default:
			return nil, fmt.Sprintf("eagerness %q: use low, medium, high or auto", clip(w.Eagerness, 20))
		}
	default:
		return nil, fmt.Sprintf("turn_detection type %q: use server_vad or semantic_vad (or null)", clip(w.Type, 30))
	}
	if w.Threshold != nil {
		if *w.Threshold < 0 || *w.Threshold > 1 {
			return nil, "threshold must be between 0 and 1"
		}
		d.Threshold = *w.Threshold
	}
	if w.PrefixPaddingMs != nil && *w.PrefixPaddingMs > 0 {
		d.PrefixPaddingMs = min(*w.PrefixPaddingMs, 2000)
	}
	if w.SilenceDurationMs != nil && *w.SilenceDurationMs > 0 {
		d.SilenceDurationMs = min(max(*w.SilenceDurationMs, 100), 10000)
	}
	if w.CreateResponse != nil {
		d.CreateResponse = *w.CreateResponse
	}
	if w.InterruptResponse != nil {
		d.InterruptResponse = *w.InterruptResponse
	}
	return d, ""
}

// semantic_vad is the call's endpointing (pipeline/endpoint), which reads
// the caller's words so far: eagerness chooses its waits.

// taking is the call's turn taking for the session.
func (c *conf) taking() call.TurnTaking {
	d := c.Turns
	if d == nil {
		return call.TurnTaking{Manual: true, NoResponse: true}
	}
	t := call.TurnTaking{
		NoResponse: !d.CreateResponse || !c.audio(), // a text reply is asked for by the connection
		NoBargeIn:  !d.InterruptResponse,
		PreRoll:    time.Duration(d.PrefixPaddingMs) * time.Millisecond,
	}
	if d.Type == "semantic_vad" {
		t.Eagerness = d.Eagerness
		if t.Eagerness == "" {
			t.Eagerness = "auto"
		}
		return t
	}
	t.VAD.Stop = time.Duration(d.SilenceDurationMs) * time.Millisecond
	// OpenAI's threshold is 0 to 1 (0.5 by default); Parley's VAD wants dB
	// above the noise floor (5 by default): 0.5 is 5 dB, 1 is 10.
	t.VAD.Threshold = max(0.5, 10*d.Threshold)
	return t
}

// settings is what the session's settings in Redis hold of the conf:
// what any replica needs to answer a response.
func (c *conf) settings() session.Settings {
	choice, _ := toolChoice(c.ToolChoice)
	return session.Settings{
		Instructions: c.Instructions, Voice: c.Voice, Modalities: c.Modalities,
		Tools: c.Tools, ServerTools: c.ServerTools, ToolChoice: choice, EndAtClientTools: true, Transcribe: c.transcribe(),
		TurnDetection: c.turnDetection(),
	}
}

func (c *conf) turnDetection() *session.TurnDetection {
	d := c.Turns
	if d == nil {
		return &session.TurnDetection{Mode: "manual"}
	}
	cr, ir := d.CreateResponse, d.InterruptResponse
	td := &session.TurnDetection{Mode: "vad", SilenceMs: d.SilenceDurationMs, PrefixMs: d.PrefixPaddingMs,
		CreateResponse: &cr, InterruptResponse: &ir}
	if d.Type == "semantic_vad" {
		// The silence after words that say neither, for the record.
		normal := endpoint.New(endpoint.Eagerness(d.Eagerness)).Config().Normal
		td.Mode, td.Eagerness, td.SilenceMs = "semantic", d.Eagerness, int(normal.Milliseconds())
	}
	return td
}

// toolChoice reads a tool_choice: a mode or {"type": "function", "name"}.
func toolChoice(raw json.RawMessage) (string, string) {
	if isNull(raw) {
		return "", ""
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		switch mode {
		case "auto", "none", "required":
			return mode, ""
		}
		return "", fmt.Sprintf("tool_choice %q: use auto, none, required or {\"type\": \"function\", \"name\": …}", clip(mode, 30))
	}
	var fn struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &fn) != nil || fn.Type != "function" || fn.Name == "" {
		return "", "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": …}"
	}
	return fn.Name, ""
}
