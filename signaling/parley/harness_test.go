package parley_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/internal/testkit/wsclient"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/parleyhq/parley/pipeline/turn"
	"github.com/parleyhq/parley/signaling"
	"github.com/parleyhq/parley/signaling/parley"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// replica is one Parley server on a real Redis: the same wiring as
// cmd/parley, on an httptest server on 127.0.0.1.
type replica struct {
	URL    string
	model  llm.LLM
	engine *turn.Engine
	gw     *signaling.Gateway
	srv    *parley.Server
	http   *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type replicaOpts struct {
	engine turn.Config
	ws     signaling.Config // the gateway's and the sockets'
	parley parley.Config
	asr    speech.ASR // with tts: voice calls enabled
	tts    speech.TTS
	call   call.Config
	store  session.Config

	recorder call.Recorder // Voice.Recorder; nil: calls are not recorded
}

func startReplica(t testing.TB, rdb *redis.Client, model llm.LLM, o replicaOpts) *replica {
	t.Helper()
	log := testLogger(t)
	// As cmd/parley does: commands through the autopipeliner, Pub/Sub on
	// the client.
	cmds, err := rdb.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewStore(cmds, o.store)
	hub := session.NewHub(rdb, store, log)
	limiter := ratelimit.New(cmds, ratelimit.Config{})
	eng, err := turn.NewEngine(cmds, store, limiter, model, o.engine, log)
	if err != nil {
		t.Fatal(err)
	}
	var voice *call.Voice
	if o.asr != nil {
		voice = &call.Voice{Turns: eng, Events: hub, ASR: o.asr, TTS: o.tts, Config: o.call, Recorder: o.recorder}
	}
	gw := signaling.NewGateway(o.ws, log)
	srv := parley.NewServer(o.parley, gw, &signaling.Sessions{Store: store, Hub: hub}, eng, voice, log)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{model: model, engine: eng, gw: gw, srv: srv, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = hub.Run(ctx) }()
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	go func() { wg.Wait(); close(r.done) }()
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	r.http = httptest.NewServer(mux)
	r.URL = "ws" + strings.TrimPrefix(r.http.URL, "http") + "/ws"
	t.Cleanup(r.kill)
	return r
}

// drain stops the replica as a SIGTERM does (cmd/parley's order): sockets
// first (clients are told to reconnect), then the engine finishes or hands
// over its turns within d.
func (r *replica) drain(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = r.gw.Shutdown(ctx)
	err := r.engine.Drain(ctx)
	r.kill()
	return err
}

// kill stops the replica abruptly, as a crash would look to Redis: no
// drain, no handover, in-flight turns left in its job stream.
func (r *replica) kill() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		// Hijacked sockets are not closed by httptest: close them here.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.gw.Shutdown(ctx)
		r.http.Close()
	})
}

// The tests' socket: the one WebSocket client of the test kit.
type (
	client = wsclient.Client
	msg    = wsclient.Msg
)

func dial(t testing.TB, url string) *client { return wsclient.Dial(t, url) }

// echoLLM replies "echo: <last user message>" in pieces. It batches up to
// max conversations per call and records what it was given.
type echoLLM struct {
	max   int
	delay time.Duration // between pieces

	mu    sync.Mutex
	convs [][]llm.Message
}

func (l *echoLLM) MaxBatch() int { return l.max }

// CallsTools implements llm.LLM: this fake calls none.
func (l *echoLLM) CallsTools() bool { return false }

func (l *echoLLM) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	convs := llm.Messages(reqs)
	l.mu.Lock()
	l.convs = append(l.convs, convs...)
	l.mu.Unlock()
	replies := make([][]string, len(convs))
	for i, c := range convs {
		replies[i] = strings.SplitAfter("echo: "+lastUser(c), " ")
	}
	for k := 0; ; k++ {
		more := false
		for i, r := range replies {
			if k < len(r) {
				emit(i, llm.Piece{Text: r[k]})
				more = true
			}
		}
		if !more {
			return nil
		}
		if l.delay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(l.delay):
			}
		}
	}
}

func lastUser(conv []llm.Message) string {
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role == llm.RoleUser {
			return conv[i].Content
		}
	}
	return ""
}

// gateLLM sends one piece per value received on its gate, then finishes
// when the gate is closed; it returns with ctx.
type gateLLM struct {
	gate    chan string
	started chan struct{} // one value per call
	mu      sync.Mutex
	convs   [][]llm.Message
}

func newGateLLM() *gateLLM {
	return &gateLLM{gate: make(chan string), started: make(chan struct{}, 100)}
}

func (l *gateLLM) MaxBatch() int { return 1 }

// CallsTools implements llm.LLM: this fake calls none.
func (l *gateLLM) CallsTools() bool { return false }

func (l *gateLLM) Stream(ctx context.Context, reqs []llm.Request, emit func(int, llm.Piece)) error {
	convs := llm.Messages(reqs)
	l.mu.Lock()
	l.convs = append(l.convs, convs...)
	l.mu.Unlock()
	l.started <- struct{}{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s, ok := <-l.gate:
			if !ok {
				return nil
			}
			emit(0, llm.Piece{Text: s})
		}
	}
}

func newRedis(t testing.TB) *redis.Client {
	return redistest.Start(t).Client()
}
