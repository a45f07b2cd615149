package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/endpoint"
	"github.com/parleyhq/parley/pipeline/flite"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/local"
	"github.com/parleyhq/parley/pipeline/openai"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/record"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/parleyhq/parley/pipeline/sphinx"
	"github.com/parleyhq/parley/pipeline/tools"
	"github.com/parleyhq/parley/pipeline/tools/mcp"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/redis/go-redis/v9"
)

// core is what every front end shares: Redis, the session store and its
// live delivery, the turn engine, the voice stack and the server's tools.
type core struct {
	rdb    redis.UniversalClient // Pub/Sub and /readyz
	store  *session.Store
	hub    *session.Hub
	engine *turn.Engine
	voice  *call.Voice   // nil: text only
	tools  tools.Toolbox // the MCP servers' tools; nil: no -mcp-config
	mcp    *mcp.Manager  // runs them (Run under serve's errgroup); nil when tools is
	close  func()

	record *record.Recorder // records calls, deletes old recordings (Run under serve's errgroup); nil: no -record-dir
}

// buildCore connects to Redis (or starts the embedded one) and builds the
// core, in order.
func buildCore(ctx context.Context, cfg *config, log *slog.Logger) (*core, error) {
	// First: a directory that cannot take recordings stops the start at once.
	rec, err := newRecorder(cfg, log)
	if err != nil {
		return nil, err
	}
	rdb, closeRedis, err := openRedis(cfg, log)
	if err != nil {
		return nil, err
	}
	c := &core{rdb: rdb, close: closeRedis, record: rec}
	fail := func(err error) (*core, error) { closeRedis(); return nil, err }
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fail(fmt.Errorf("redis: %w", err))
	}
	// Commands go through go-redis' autopipeliner: the many small commands
	// of concurrent turns share round trips (docs/benchmarks.md). Pub/Sub
	// keeps its own connection.
	cmds, err := autoPipeline(rdb, cfg.RedisAutoPipeline)
	if err != nil {
		return fail(err)
	}
	// On a cluster, classic PUBLISH goes to every node; shard channels stay
	// on the session's own shard.
	if cfg.RedisCluster {
		if err := probeSharded(ctx, rdb, cfg.RedisPrefix); err != nil {
			return fail(err)
		}
	}
	c.store = session.NewStore(cmds, session.Config{Prefix: cfg.RedisPrefix, TTL: cfg.SessionTTL, MaxEvents: cfg.MaxEvents, MaxTurns: cfg.MaxTurns,
		Sharded: cfg.RedisCluster, Cluster: cfg.RedisCluster})
	c.hub = session.NewHub(rdb, c.store, log.With("component", "hub"))
	limiter := ratelimit.New(cmds, ratelimit.Config{Prefix: cfg.RedisPrefix + ":rl:"})
	if err := limiter.Load(ctx); err != nil {
		return fail(err)
	}
	if c.mcp, err = newMCP(cfg, log); err != nil {
		return fail(err)
	}
	if c.mcp != nil {
		c.tools = c.mcp
	}
	model, err := newLLM(cfg, log)
	if err != nil {
		return fail(err)
	}
	c.engine, err = turn.NewEngine(cmds, c.store, limiter, model, turn.Config{
		ReplicaID: cfg.ReplicaID, Prefix: cfg.RedisPrefix,
		Slots: cfg.Slots, Queue: cfg.Queue, QueueWait: cfg.QueueWait, Batch: cfg.Batch,
		TurnTimeout: cfg.LLMTimeout, SystemPrompt: cfg.SystemPrompt, HistoryTurns: cfg.HistoryTurns,
		Coalesce: cfg.Coalesce, FirstWait: cfg.FirstWait, ClaimAfter: cfg.ClaimAfter,
		Toolbox: c.tools, ToolSteps: cfg.ToolSteps, ToolTimeout: cfg.ToolTimeout,
		SessionRate: ratelimit.Rule{Rate: cfg.RateSession, Burst: cfg.BurstSession},
		GlobalRate:  ratelimit.Rule{Rate: cfg.RateGlobal, Burst: cfg.BurstGlobal},
	}, log.With("component", "engine"))
	if err != nil {
		return fail(err)
	}
	if c.voice, err = newVoice(cfg, c.engine, c.hub, log); err != nil {
		return fail(err)
	}
	if c.voice != nil && c.record != nil {
		c.voice.Recorder = c.record
	}
	return c, nil
}

// probeSharded checks that the cluster speaks sharded Pub/Sub (Redis 7).
func probeSharded(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.SPublish(pctx, prefix+":probe", "").Err(); err != nil {
		return fmt.Errorf("redis cluster: SPUBLISH failed (sharded Pub/Sub needs Redis 7 or later): %w", err)
	}
	return nil
}

// openRedis connects to REDIS_URL, or starts an in-process miniredis.
func openRedis(cfg *config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if cfg.RedisURL != "" && cfg.RedisCluster {
		// A session's keys share a hash tag (its id) and each replica's
		// job stream is its own key: every script runs on one slot.
		opt, err := redis.ParseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL (cluster): %w", err)
		}
		rdb := redis.NewClusterClient(opt)
		log.Info("redis cluster", "seeds", opt.Addrs)
		return rdb, func() { rdb.Close() }, nil
	}
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opt)
		return rdb, func() { rdb.Close() }, nil
	}
	return embeddedRedis(log)
}

// autoPipeline returns the client that sends commands: rdb itself, or its
// autopipeliner, which batches the commands that concurrent callers issue
// while a round trip is under way into one pipeline.
func autoPipeline(rdb redis.UniversalClient, on bool) (redis.UniversalClient, error) {
	if !on {
		return rdb, nil
	}
	type autoPipeliner interface {
		AutoPipeline() (*redis.AutoPipeliner, error)
	}
	c, ok := rdb.(autoPipeliner)
	if !ok {
		return rdb, nil
	}
	ap, err := c.AutoPipeline()
	if err != nil {
		return nil, fmt.Errorf("redis autopipeline: %w", err)
	}
	return ap, nil
}

func llmName(cfg *config) string {
	if cfg.LLMBaseURL == "" {
		return "offline local responder (no language model)"
	}
	shown := cfg.LLMBaseURL
	if u, err := url.Parse(shown); err == nil {
		shown = u.Redacted() // a password in the URL is not logged
	}
	return cfg.LLMAPI + " " + cfg.LLMModel + " at " + shown
}

func newLLM(cfg *config, log *slog.Logger) (llm.LLM, error) {
	if cfg.LLMBaseURL == "" {
		log.Warn("LLM_BASE_URL is not set: replies come from the offline local responder, which is not a language model")
		return local.New(local.Config{TokenDelay: cfg.LocalDelay}), nil
	}
	oc := openai.Config{BaseURL: cfg.LLMBaseURL, Model: cfg.LLMModel, APIKey: cfg.LLMAPIKey, Timeout: cfg.LLMTimeout, MaxTokens: cfg.LLMMaxTok}
	if cfg.LLMAPI == "completions" {
		return openai.NewCompletions(oc, cfg.LLMTemplate, cfg.Batch)
	}
	return openai.NewChat(oc)
}

// newMCP reads -mcp-config; nil without it. The servers start when the
// Manager runs.
func newMCP(cfg *config, log *slog.Logger) (*mcp.Manager, error) {
	if cfg.MCPConfig == "" {
		return nil, nil
	}
	servers, warnings, err := mcp.LoadConfig(cfg.MCPConfig)
	if err != nil {
		return nil, err
	}
	log = log.With("component", "mcp")
	for _, w := range warnings {
		log.Warn(w)
	}
	log.Info("MCP servers configured", "file", cfg.MCPConfig, "servers", len(servers))
	return mcp.New(mcp.Config{Servers: servers, CallTimeout: cfg.MCPCallTimeout, MaxOutput: cfg.MCPMaxOutput}, log)
}

// newRecorder checks -record-dir; nil without it.
func newRecorder(cfg *config, log *slog.Logger) (*record.Recorder, error) {
	if cfg.RecordDir == "" {
		return nil, nil
	}
	r, err := record.New(record.Config{Dir: cfg.RecordDir, Retention: cfg.RecordRetention}, log.With("component", "record"))
	if err != nil {
		return nil, fmt.Errorf("-record-dir %s cannot take recordings: %w", cfg.RecordDir, err)
	}
	kept := "for ever"
	if cfg.RecordRetention > 0 {
		kept = cfg.RecordRetention.String()
	}
	if cfg.ASR == "off" || cfg.TTS == "off" {
		log.Warn("-record-dir is set but voice calls are off: nothing is recorded (old recordings are still deleted)", "dir", cfg.RecordDir)
	} else {
		log.Info("calls are recorded", "dir", cfg.RecordDir, "kept", kept)
	}
	return r, nil
}

// newVoice builds the speech providers and the voice stack that calls
// share; nil (text only) when either is off.
func newVoice(cfg *config, turns call.Turns, events call.Follower, log *slog.Logger) (*call.Voice, error) {
	if cfg.ASR == "off" || cfg.TTS == "off" {
		log.Info("voice calls are off; text chat only")
		return nil, nil
	}
	var asr speech.ASR
	var err error
	switch cfg.ASR {
	case "openai":
		asr, err = openai.NewTranscription(openai.Config{BaseURL: cfg.ASRBaseURL, Model: cfg.ASRModel, APIKey: cfg.ASRAPIKey}, 16000, cfg.ASRLanguage)
	default:
		asr, err = sphinx.New(sphinx.Config{Decoders: cfg.ASRDecoders})
	}
	if err != nil {
		return nil, fmt.Errorf("speech recogniser: %w", err)
	}
	var tts speech.TTS
	switch cfg.TTS {
	case "openai":
		tts, err = openai.NewSpeech(openai.Config{BaseURL: cfg.TTSBaseURL, Model: cfg.TTSModel, APIKey: cfg.TTSAPIKey}, cfg.TTSVoice, cfg.TTSRate)
	default:
		tts, err = flite.New(flite.Config{Voice: cfg.TTSVoice})
	}
	if err != nil {
		return nil, fmt.Errorf("speech synthesiser: %w", err)
	}
	log.Info("voice calls on (WebRTC and WebSocket audio)", "asr", cfg.ASR, "tts", cfg.TTS)
	return &call.Voice{Turns: turns, Events: events, ASR: asr, TTS: tts, Config: call.Config{
		VAD:          media.VADConfig{Start: cfg.VADStart, Stop: cfg.VADStop},
		Endpoint:     endpoint.Config{Short: cfg.EndpointShort, Normal: cfg.VADStop, Long: cfg.EndpointLong},
		FixedSilence: !cfg.Endpointing,
		NoEchoGate:   !cfg.EchoGate,
		BargeInWords: cfg.BargeInWords,
		BargeInAfter: cfg.BargeInAfter,
	}}, nil
}
