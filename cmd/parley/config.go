package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/rtc"
	"github.com/parleyhq/parley/signaling/twilio"
)

// setting is one configuration value: a flag, and the environment variable
// that sets its default. The README's table is checked against this list.
type setting struct {
	flag, env, help string
	dflt            string // as the flag package prints it
}

// config is every setting of the parley binary.
type config struct {
	Addr      string
	DebugAddr string
	TLSCert   string
	TLSKey    string
	LogLevel  string
	LogFormat string
	Drain     time.Duration
	// The Go runtime's memory (memory.go).
	GCPercent     int
	MemoryLimit   string
	MemoryRelease time.Duration

	RedisURL          string
	RedisPrefix       string
	RedisAutoPipeline bool
	RedisCluster      bool
	ReplicaID         string
	SessionTTL        time.Duration
	MaxEvents         int64

	LLMBaseURL  string
	LLMModel    string
	LLMAPIKey   string
	LLMAPI      string
	LLMTemplate string
	LLMTimeout  time.Duration
	LLMMaxTok   int
	LocalDelay  time.Duration

	MCPConfig      string
	ToolSteps      int
	ToolTimeout    time.Duration
	MCPCallTimeout time.Duration
	MCPMaxOutput   int

	Slots        int
	Queue        int
	QueueWait    time.Duration
	Batch        int
	SystemPrompt string
	HistoryTurns int
	Coalesce     time.Duration
	FirstWait    time.Duration
	ClaimAfter   time.Duration

	RateSession  float64
	BurstSession int
	RateGlobal   float64
	BurstGlobal  int

	ASR         string
	ASRBaseURL  string
	ASRModel    string
	ASRAPIKey   string
	ASRLanguage string
	ASRDecoders int
	TTS         string
	TTSVoice    string
	TTSBaseURL  string
	TTSModel    string
	TTSAPIKey   string
	TTSRate     int
	VADStart    time.Duration
	VADStop     time.Duration
	// Turn taking (pipeline/call, pipeline/endpoint).
	Endpointing   bool
	EndpointShort time.Duration
	EndpointLong  time.Duration
	EchoGate      bool
	BargeInWords  int
	BargeInAfter  time.Duration
	Complexity    int
	OpusSpeech    bool
	ICEServers    string
	UDPPorts      string
	PublicIPs     string
	Interfaces    string
	RTCLoopback   string

	RecordDir       string
	RecordRetention time.Duration

	Origins      string
	MaxMessage   int64
	MaxText      int
	RTMessage    int64
	RTAppend     int
	SendQueue    int
	WriteTimeout time.Duration
	PingInterval time.Duration
	ReadTimeout  time.Duration
	DrainSpread  time.Duration

	AuthTokens     string
	AuthSecret     string
	AuthFailBurst  int
	AuthFailRate   float64
	MaxConnsPerIP  int
	ConnectRate    float64
	ConnectBurst   int
	TrustedProxies string
	MaxTurns       int64

	PublicURL      string
	TwilioToken    string
	TwilioGreeting string
	TwilioDTMF     string

	proxies     []netip.Prefix // TrustedProxies, parsed by parseConfig
	memoryLimit int64          // MemoryLimit in bytes, parsed by parseConfig; 0: none
}

// settings lists every flag with its environment variable, in README order.
var settings []setting

type flagSet struct {
	fs  *flag.FlagSet
	env func(string) string
	err error
}

// envDefault is the flag's default: dflt, or the environment variable's
// value parsed by parse.
func envDefault[T any](f *flagSet, name, env, help string, dflt T, parse func(string) (T, error)) T {
	settings = append(settings, setting{flag: name, env: env, help: help})
	e := f.env(env)
	if e == "" {
		return dflt
	}
	v, err := parse(e)
	if err != nil {
		f.fail(env, e, err)
		return dflt
	}
	return v
}

func (f *flagSet) str(p *string, name, env, dflt, help string) {
	f.fs.StringVar(p, name, envDefault(f, name, env, help, dflt, func(s string) (string, error) { return s, nil }), help)
}

func (f *flagSet) dur(p *time.Duration, name, env string, dflt time.Duration, help string) {
	f.fs.DurationVar(p, name, envDefault(f, name, env, help, dflt, time.ParseDuration), help)
}

func (f *flagSet) int(p *int, name, env string, dflt int, help string) {
	f.fs.IntVar(p, name, envDefault(f, name, env, help, dflt, strconv.Atoi), help)
}

func (f *flagSet) int64(p *int64, name, env string, dflt int64, help string) {
	parse := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	f.fs.Int64Var(p, name, envDefault(f, name, env, help, dflt, parse), help)
}

func (f *flagSet) float(p *float64, name, env string, dflt float64, help string) {
	parse := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
	f.fs.Float64Var(p, name, envDefault(f, name, env, help, dflt, parse), help)
}

func (f *flagSet) bool(p *bool, name, env string, dflt bool, help string) {
	f.fs.BoolVar(p, name, envDefault(f, name, env, help, dflt, strconv.ParseBool), help)
}

func (f *flagSet) fail(env, val string, err error) {
	if f.err == nil {
		f.err = fmt.Errorf("%s=%q: %v", env, val, err)
	}
}

// parseConfig reads flags from args, with defaults from the environment.
func parseConfig(args []string, env func(string) string) (*config, error) {
	settings = settings[:0]
	c := &config{}
	f := &flagSet{fs: flag.NewFlagSet("parley", flag.ContinueOnError), env: env}

	f.str(&c.Addr, "addr", "PARLEY_ADDR", "127.0.0.1:8080", "HTTP listen address (/, /ws, /twilio/voice, /twilio/media, /healthz, /readyz, /metrics)")
	f.str(&c.DebugAddr, "debug-addr", "PARLEY_DEBUG_ADDR", "", "listen address of /debug/pprof/ (profiling); keep it on loopback; empty: off")
	f.str(&c.TLSCert, "tls-cert", "PARLEY_TLS_CERT", "", "PEM certificate (and chain) file: with -tls-key, serve HTTPS and WSS on -addr; reloaded on SIGHUP and when the files change")
	f.str(&c.TLSKey, "tls-key", "PARLEY_TLS_KEY", "", "PEM private key file of -tls-cert")
	f.str(&c.LogLevel, "log-level", "PARLEY_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.str(&c.LogFormat, "log-format", "PARLEY_LOG_FORMAT", "text", "log format: text or json")
	f.dur(&c.Drain, "drain-timeout", "PARLEY_DRAIN_TIMEOUT", 10*time.Second, "on SIGTERM/SIGINT, time to finish in-flight turns before handing them to other replicas")
	f.dur(&c.DrainSpread, "drain-reconnect-spread", "PARLEY_DRAIN_RECONNECT_SPREAD", 2*time.Second, "on drain, each client is told to wait a random delay below this before reconnecting (retry_after_ms), so that they do not all arrive at once; 0: 2s")

	f.int(&c.GCPercent, "gc-percent", "PARLEY_GC_PERCENT", defaultGCPercent, "the Go runtime's GC percent: the heap grows by this much of the live heap before the next collection; higher costs less CPU and more memory (GOGC, if set, wins); 0: 200")
	f.dur(&c.MemoryRelease, "memory-release", "PARLEY_MEMORY_RELEASE", 10*time.Second, "how often the server looks whether it is at rest (allocating little) and, if it is, gives the heap's freed memory back to the OS, so that an idle replica's RSS follows what it holds, not the burst it had; 0: 10s; negative: never")
	f.str(&c.MemoryLimit, "memory-limit", "PARLEY_MEMORY_LIMIT", "0", "soft memory limit of the Go runtime, e.g. 900MiB: near it the GC runs more often whatever -gc-percent says; set it below a container's memory limit (GOMEMLIMIT, if set, wins); 0: none")

	f.str(&c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (redis://host:port/db); empty starts an in-process Redis (miniredis) for a one-machine demo")
	f.str(&c.RedisPrefix, "redis-prefix", "PARLEY_REDIS_PREFIX", "parley", "prefix of every Redis key")
	f.bool(&c.RedisCluster, "redis-cluster", "PARLEY_REDIS_CLUSTER", false, "REDIS_URL is a Redis Cluster: redis://host:port?addr=host2:port&addr=host3:port")
	f.bool(&c.RedisAutoPipeline, "redis-autopipeline", "PARLEY_REDIS_AUTOPIPELINE", true, "batch concurrent Redis commands into shared round trips (go-redis autopipelining)")
	f.str(&c.ReplicaID, "replica-id", "PARLEY_REPLICA_ID", "", "this replica's name in Redis; empty: random per process")
	f.dur(&c.SessionTTL, "session-ttl", "PARLEY_SESSION_TTL", 30*time.Minute, "an idle session expires after this")
	f.int64(&c.MaxEvents, "session-max-events", "PARLEY_SESSION_MAX_EVENTS", 10000, "events kept in a session's log (approximate)")

	f.str(&c.LLMBaseURL, "llm-base-url", "LLM_BASE_URL", "", "OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1; empty uses the offline local responder")
	f.str(&c.LLMModel, "llm-model", "LLM_MODEL", "", "model name sent upstream")
	f.str(&c.LLMAPIKey, "llm-api-key", "LLM_API_KEY", "", "bearer token for the upstream (never logged)")
	f.str(&c.LLMAPI, "llm-api", "LLM_API", "chat", "upstream API: chat (chat completions, streamed) or completions (list of prompts, batched, as vLLM serves)")
	f.str(&c.LLMTemplate, "llm-prompt-template", "LLM_PROMPT_TEMPLATE", "", "Go text/template that renders a conversation into a prompt, for -llm-api=completions; empty: ChatML")
	f.dur(&c.LLMTimeout, "llm-timeout", "LLM_TIMEOUT", 60*time.Second, "deadline of one upstream call")
	f.int(&c.LLMMaxTok, "llm-max-tokens", "LLM_MAX_TOKENS", 0, "max_tokens sent upstream; 0 leaves it out")

	f.dur(&c.LocalDelay, "local-delay", "PARLEY_LOCAL_DELAY", 0, "pause between the offline responder's words, to show streaming; 0: none")

	f.int(&c.ToolSteps, "tool-steps", "PARLEY_TOOL_STEPS", 4, "tool calls a turn may make in a row before the model must answer in words; 0: 4")
	f.dur(&c.ToolTimeout, "tool-timeout", "PARLEY_TOOL_TIMEOUT", 30*time.Second, "a client's tool not answered within this counts as failed (the model is told); 0: 30s")
	f.str(&c.MCPConfig, "mcp-config", "PARLEY_MCP_CONFIG", "", `JSON file of MCP servers whose tools the model may call, {"mcpServers": {...}} as MCP clients write it (see docs/operations.md); empty: none`)
	f.dur(&c.MCPCallTimeout, "mcp-call-timeout", "PARLEY_MCP_CALL_TIMEOUT", 30*time.Second, "deadline of one call of an MCP server's tool; 0: 30s")
	f.int(&c.MCPMaxOutput, "mcp-max-output", "PARLEY_MCP_MAX_OUTPUT", 16<<10, "bytes of an MCP tool's output given to the model; the rest is cut, with a note; 0: 16384")

	f.int(&c.Slots, "llm-slots", "PARLEY_LLM_SLOTS", 16, "upstream LLM calls in flight per replica")
	f.int(&c.Queue, "llm-queue", "PARLEY_LLM_QUEUE", 1024, "turns waiting for a slot before new ones get busy (absorbs a burst of turns at once; -llm-queue-wait bounds each wait)")
	f.dur(&c.QueueWait, "llm-queue-wait", "PARLEY_LLM_QUEUE_WAIT", 10*time.Second, "a turn waiting longer than this for a slot gets busy")
	f.int(&c.Batch, "llm-batch", "PARLEY_LLM_BATCH", 4, "most turns per upstream call, for providers that batch")
	f.str(&c.SystemPrompt, "system-prompt", "PARLEY_SYSTEM_PROMPT", "", "system prompt; empty: a short voice-assistant prompt")
	f.int(&c.HistoryTurns, "history-turns", "PARLEY_HISTORY_TURNS", 20, "past messages (user and assistant) the model sees")
	f.dur(&c.Coalesce, "coalesce", "PARLEY_COALESCE", 50*time.Millisecond, "reply text is stored at most this often, or at a clause end")
	f.dur(&c.FirstWait, "first-wait", "PARLEY_FIRST_WAIT", 2*time.Millisecond, "a reply's first piece waits this long for more before it is stored (a reply that comes whole is stored whole)")
	f.dur(&c.ClaimAfter, "claim-after", "PARLEY_CLAIM_AFTER", 15*time.Second, "a replica silent this long is dead and its turns are taken over")

	f.float(&c.RateSession, "rate-session", "PARLEY_RATE_SESSION", 1, "turns per second per session; 0 = unlimited")
	f.int(&c.BurstSession, "burst-session", "PARLEY_BURST_SESSION", 5, "burst of turns per session")
	f.float(&c.RateGlobal, "rate-global", "PARLEY_RATE_GLOBAL", 0, "turns per second across all replicas; 0 = unlimited")
	f.int(&c.BurstGlobal, "burst-global", "PARLEY_BURST_GLOBAL", 100, "burst of turns across all replicas")

	f.str(&c.ASR, "asr", "PARLEY_ASR", "sphinx", "speech recogniser for calls: sphinx (offline pocketsphinx), openai (/v1/audio/transcriptions) or off")
	f.str(&c.ASRBaseURL, "asr-base-url", "PARLEY_ASR_BASE_URL", "", "OpenAI-compatible base URL for -asr=openai, e.g. http://127.0.0.1:8000/v1")
	f.str(&c.ASRModel, "asr-model", "PARLEY_ASR_MODEL", "whisper-1", "transcription model for -asr=openai")
	f.str(&c.ASRAPIKey, "asr-api-key", "PARLEY_ASR_API_KEY", "", "bearer token for -asr=openai (never logged)")
	f.str(&c.ASRLanguage, "asr-language", "PARLEY_ASR_LANGUAGE", "", "language hint for -asr=openai, e.g. en; empty: detected")
	f.int(&c.ASRDecoders, "asr-decoders", "PARLEY_ASR_DECODERS", 4, "pocketsphinx decoders, one per live call (about 93 MB each)")
	f.str(&c.TTS, "tts", "PARLEY_TTS", "flite", "speech synthesiser for calls: flite (offline), openai (/v1/audio/speech) or off")
	f.str(&c.TTSVoice, "tts-voice", "PARLEY_TTS_VOICE", "", "voice: for flite kal16 (default), kal, slt, rms, awb; for openai e.g. alloy (default)")
	f.str(&c.TTSBaseURL, "tts-base-url", "PARLEY_TTS_BASE_URL", "", "OpenAI-compatible base URL for -tts=openai")
	f.str(&c.TTSModel, "tts-model", "PARLEY_TTS_MODEL", "tts-1", "speech model for -tts=openai")
	f.str(&c.TTSAPIKey, "tts-api-key", "PARLEY_TTS_API_KEY", "", "bearer token for -tts=openai (never logged)")
	f.int(&c.TTSRate, "tts-rate", "PARLEY_TTS_RATE", 24000, "sample rate of the PCM that -tts=openai returns")
	f.dur(&c.VADStart, "vad-start", "PARLEY_VAD_START", 200*time.Millisecond, "speech this long starts a caller's turn (and interrupts the bot)")
	f.dur(&c.VADStop, "vad-stop", "PARLEY_VAD_STOP", 600*time.Millisecond, "silence this long ends a caller's turn (with -endpointing: when their words say neither that they have finished nor that they go on)")
	f.bool(&c.Endpointing, "endpointing", "PARLEY_ENDPOINTING", true, "read the end of a caller's turn from their words so far: -endpoint-short after a question or a short reply, -endpoint-long after words that end mid-thought, else -vad-stop; false: always -vad-stop")
	f.dur(&c.EndpointShort, "endpoint-short", "PARLEY_ENDPOINT_SHORT", 300*time.Millisecond, "with -endpointing: the silence after a complete utterance")
	f.dur(&c.EndpointLong, "endpoint-long", "PARLEY_ENDPOINT_LONG", 1200*time.Millisecond, "with -endpointing: the silence after words that end mid-thought (at most 2s)")
	f.bool(&c.EchoGate, "echo-gate", "PARLEY_ECHO_GATE", true, "caller audio that is only the bot's own voice coming back (a speaker phone) neither interrupts the bot nor becomes a turn")
	f.int(&c.BargeInWords, "barge-in-words", "PARLEY_BARGE_IN_WORDS", call.DefaultBargeInWords, "words (not backchannels like \"okay\"; or one like \"stop\") a caller must say over the bot to interrupt it")
	f.dur(&c.BargeInAfter, "barge-in-after", "PARLEY_BARGE_IN_AFTER", call.DefaultBargeInAfter, "speech over the bot this long interrupts it whatever the words")
	f.int(&c.Complexity, "opus-complexity", "PARLEY_OPUS_COMPLEXITY", 5, "Opus encoder complexity, 1 to 10")
	f.bool(&c.OpusSpeech, "opus-speech", "PARLEY_OPUS_SPEECH", false, "encode the bot's voice in Opus's VoIP mode (SILK or hybrid, at Opus's own bitrate) instead of CELT at 32 kbps: about three times the CPU")

	f.str(&c.ICEServers, "webrtc-ice-servers", "PARLEY_WEBRTC_ICE_SERVERS", "", "comma-separated STUN/TURN URLs for the server's WebRTC peer (turn:user:pass@host:port for TURN with credentials)")
	f.str(&c.UDPPorts, "webrtc-udp-ports", "PARLEY_WEBRTC_UDP_PORTS", "", "UDP port range for WebRTC media, e.g. 40000-40100; empty: any")
	f.str(&c.PublicIPs, "webrtc-public-ips", "PARLEY_WEBRTC_PUBLIC_IPS", "", "the host's public IPs behind a 1:1 NAT, offered as candidates")
	f.str(&c.Interfaces, "webrtc-interfaces", "PARLEY_WEBRTC_INTERFACES", "", "network interfaces to gather WebRTC candidates on, comma-separated; empty: all (loopback candidates follow -webrtc-loopback)")
	f.str(&c.RTCLoopback, "webrtc-loopback", "PARLEY_WEBRTC_LOOPBACK", "auto", "offer loopback (127.0.0.1, ::1) WebRTC candidates: auto (to a browser on this host, whose socket comes from a loopback address), on (to every client), off")

	f.str(&c.RecordDir, "record-dir", "PARLEY_RECORD_DIR", "", "record every call (browser and phone) in this directory: a stereo WAV file a call, the caller left and the bot right, and its transcript as JSON lines (see docs/operations.md); empty: no recording")
	f.dur(&c.RecordRetention, "record-retention", "PARLEY_RECORD_RETENTION", 0, "delete recordings older than this, e.g. 720h (30 days), checked hourly; 0: keep them for ever")

	f.str(&c.Origins, "allowed-origins", "PARLEY_ALLOWED_ORIGINS", "", "comma-separated browser origins allowed on /ws, /v1/realtime and (CORS) /v1/realtime/calls; empty: same host only; * any")
	f.int64(&c.MaxMessage, "max-message", "PARLEY_MAX_MESSAGE", 64<<10, "largest WebSocket frame read, in bytes")
	f.int(&c.MaxText, "max-text", "PARLEY_MAX_TEXT", 4000, "longest text turn, in characters")
	f.int64(&c.RTMessage, "realtime-max-message", "PARLEY_REALTIME_MAX_MESSAGE", 1<<20, "largest frame read on /v1/realtime, in bytes (its audio comes base64 in JSON); 0: 1 MiB")
	f.int(&c.RTAppend, "realtime-max-append", "PARLEY_REALTIME_MAX_APPEND", 512<<10, "most audio in one input_audio_buffer.append on /v1/realtime, in bytes once decoded; larger ones get an error; 0: 512 KiB")
	f.int(&c.SendQueue, "send-queue", "PARLEY_SEND_QUEUE", 256, "frames queued per socket before the client counts as slow and is disconnected")
	f.dur(&c.WriteTimeout, "write-timeout", "PARLEY_WRITE_TIMEOUT", 10*time.Second, "deadline of every socket write")
	f.dur(&c.PingInterval, "ping-interval", "PARLEY_PING_INTERVAL", 30*time.Second, "WebSocket ping period")
	f.dur(&c.ReadTimeout, "read-timeout", "PARLEY_READ_TIMEOUT", 75*time.Second, "silence (no frame, no pong) that closes a socket")

	f.str(&c.AuthTokens, "auth-tokens", "PARLEY_AUTH_TOKENS", "", "comma-separated bearer tokens accepted on /ws (never logged); empty: see -auth-secret")
	f.str(&c.AuthSecret, "auth-secret", "PARLEY_AUTH_SECRET", "", "HMAC key of signed tokens with an expiry accepted on /ws (mint with 'parley token'); with neither, /ws is open")
	f.int(&c.AuthFailBurst, "auth-fail-burst", "PARLEY_AUTH_FAIL_BURST", 10, "failed authentications per client IP before its wrong tokens get 429 auth_rate (good ones still pass); 0: 10")
	f.float(&c.AuthFailRate, "auth-fail-rate", "PARLEY_AUTH_FAIL_RATE", 1, "failed authentications per second per client IP once past the burst; 0: 1")
	f.int(&c.MaxConnsPerIP, "max-conns-per-ip", "PARLEY_MAX_CONNS_PER_IP", 0, "open WebSocket connections per client IP; 0: no cap (see docs/operations.md before setting one behind a proxy)")
	f.float(&c.ConnectRate, "connect-rate-per-ip", "PARLEY_CONNECT_RATE_PER_IP", 0, "new WebSocket connections per second per client IP; 0: no cap")
	f.int(&c.ConnectBurst, "connect-burst-per-ip", "PARLEY_CONNECT_BURST_PER_IP", 0, "burst of new connections per client IP; 0: twice the rate")
	f.str(&c.TrustedProxies, "trusted-proxies", "PARLEY_TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of the proxies in front (e.g. 127.0.0.1,10.0.0.0/8); from them the client IP is read from X-Forwarded-For or Forwarded; empty: none, the TCP peer is the client")
	f.int64(&c.MaxTurns, "session-max-turns", "PARLEY_SESSION_MAX_TURNS", 10000, "user turns a session may have")

	f.str(&c.PublicURL, "public-url", "PARLEY_PUBLIC_URL", "", "this server's public base URL as Twilio reaches it, scheme://host[:port] (e.g. https://voice.example.com): the phone stream's wss:// URL and the signed URLs are built on it; empty: each request's Host, with https unless a trusted proxy's X-Forwarded-Proto says http")
	f.str(&c.TwilioToken, "twilio-auth-token", "PARLEY_TWILIO_AUTH_TOKEN", "", "the Twilio account's auth token: X-Twilio-Signature is checked on /twilio/voice and /twilio/media (never logged); empty: not checked, anyone who reaches them can open phone calls")
	f.str(&c.TwilioGreeting, "twilio-greeting", "PARLEY_TWILIO_GREETING", "", "said by Twilio (<Say>) when a phone call is answered, before the bot listens; empty: none")
	f.str(&c.TwilioDTMF, "twilio-dtmf", "PARLEY_TWILIO_DTMF", "turn", "what a caller's key press does: turn (stored, and a user turn such as \"The caller pressed 5.\") or event (stored only)")

	if f.err != nil {
		return nil, f.err
	}
	if err := removedSettings(args, env); err != nil {
		return nil, err
	}
	for i := range settings {
		settings[i].dflt = f.fs.Lookup(settings[i].flag).DefValue
	}
	if err := f.fs.Parse(args); err != nil {
		return nil, err
	}
	if err := c.memory(); err != nil {
		return nil, err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, fmt.Errorf("-tls-cert and -tls-key go together: set both to serve HTTPS, or neither for HTTP")
	}
	switch c.LLMAPI {
	case "chat", "completions":
	default:
		return nil, fmt.Errorf("-llm-api %q: use chat or completions", c.LLMAPI)
	}
	for _, v := range []struct{ name, val, url string }{{"asr", c.ASR, c.ASRBaseURL}, {"tts", c.TTS, c.TTSBaseURL}} {
		switch v.val {
		case "openai":
			if v.url == "" {
				return nil, fmt.Errorf("-%s=openai needs -%s-base-url", v.name, v.name)
			}
		case "sphinx", "flite", "off":
		default:
			return nil, fmt.Errorf("-%s %q: see -help", v.name, v.val)
		}
	}
	switch {
	case c.EndpointShort <= 0 || c.EndpointLong <= 0 || c.EndpointShort > c.EndpointLong:
		return nil, fmt.Errorf("-endpoint-short %v and -endpoint-long %v: both above zero, the short one no longer", c.EndpointShort, c.EndpointLong)
	case c.EndpointLong > 2*time.Second:
		return nil, fmt.Errorf("-endpoint-long %v: at most 2s (a caller waits that long for any answer)", c.EndpointLong)
	case c.BargeInWords < 1 || c.BargeInAfter <= 0:
		return nil, fmt.Errorf("-barge-in-words %d and -barge-in-after %v: at least one word, and a time above zero", c.BargeInWords, c.BargeInAfter)
	}
	if c.RecordRetention < 0 || (c.RecordRetention > 0 && c.RecordDir == "") {
		return nil, fmt.Errorf("-record-retention %v: it is how long recordings in -record-dir are kept (0: for ever)", c.RecordRetention)
	}
	if _, err := c.webrtc(); err != nil {
		return nil, err
	}
	proxies, err := signaling.ParseTrustedProxies(list(c.TrustedProxies))
	if err != nil {
		return nil, fmt.Errorf("-trusted-proxies: %w", err)
	}
	c.proxies = proxies
	if err := c.twilio().Check(); err != nil {
		return nil, err
	}
	if c.LLMBaseURL != "" && c.LLMModel == "" {
		return nil, fmt.Errorf("LLM_BASE_URL is set but LLM_MODEL is not: name the model to use")
	}
	return c, nil
}

// removedSettings fails on a setting that no longer exists, saying what
// replaces it: ignored, it would change what the server does unseen.
func removedSettings(args []string, env func(string) string) error {
	const trustProxy = "-trust-proxy and PARLEY_TRUST_PROXY are gone: list your proxies' addresses in -trusted-proxies (PARLEY_TRUSTED_PROXIES), e.g. 10.0.0.0/8; see docs/operations.md"
	if env("PARLEY_TRUST_PROXY") != "" {
		return errors.New(trustProxy)
	}
	for _, a := range args {
		if name, _, _ := strings.Cut(a, "="); name == "-trust-proxy" || name == "--trust-proxy" {
			return errors.New(trustProxy)
		}
	}
	return nil
}

// memory checks the Go runtime's memory settings and parses the limit.
func (c *config) memory() error {
	switch {
	case c.GCPercent < 0:
		return fmt.Errorf("-gc-percent %d: a percent above zero (0: %d); to turn the GC off, GOGC=off", c.GCPercent, defaultGCPercent)
	case c.GCPercent == 0:
		c.GCPercent = defaultGCPercent
	}
	n, err := parseByteSize(c.MemoryLimit)
	if err != nil {
		return fmt.Errorf("-memory-limit %w", err)
	}
	c.memoryLimit = n
	return nil
}

func (c *config) origins() []string { return list(c.Origins) }

// twilio is the phone front end's configuration.
func (c *config) twilio() twilio.Config {
	return twilio.Config{PublicURL: c.PublicURL, AuthToken: c.TwilioToken, Greeting: c.TwilioGreeting, DTMF: c.TwilioDTMF}
}

// list splits a comma-separated setting.
func list(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// webrtc turns the WebRTC settings into the signaling package's config.
func (c *config) webrtc() (rtc.Config, error) {
	w := rtc.Config{PublicIPs: list(c.PublicIPs), Interfaces: list(c.Interfaces)}
	var err error
	if w.Loopback, err = rtc.ParseLoopback(c.RTCLoopback); err != nil {
		return w, fmt.Errorf("-webrtc-loopback %w", err)
	}
	for _, u := range list(c.ICEServers) {
		srv := webrtc.ICEServer{URLs: []string{u}}
		// turn:user:pass@host:port carries its credentials.
		if scheme, rest, ok := strings.Cut(u, ":"); ok && strings.HasPrefix(scheme, "turn") {
			if cred, host, ok := strings.Cut(rest, "@"); ok {
				user, pass, _ := strings.Cut(cred, ":")
				srv = webrtc.ICEServer{URLs: []string{scheme + ":" + host}, Username: user, Credential: pass}
			}
		}
		w.ICEServers = append(w.ICEServers, srv)
	}
	if c.UDPPorts != "" {
		lo, hi, ok := strings.Cut(c.UDPPorts, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || a == 0 || b < a {
			return w, fmt.Errorf("-webrtc-udp-ports %q: want MIN-MAX, e.g. 40000-40100", c.UDPPorts)
		}
		w.PortMin, w.PortMax = uint16(a), uint16(b)
	}
	return w, nil
}
