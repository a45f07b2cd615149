package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
)

// Config of an Engine. A zero field means the default in its comment.
type Config struct {
	// ReplicaID names this replica in Redis (its job stream, its heartbeat).
	// Default: random per process. Letters, digits, '.', '_' and '-' only.
	ReplicaID string
	Prefix    string // Redis key prefix; default "parley"

	Slots int // upstream LLM calls in flight on this replica; default 16
	// Queue: turns waiting for a slot before new ones get "busy"; default
	// 1024, so that a crowd that sends at once is queued, not refused (with
	// 64, 220 of 300 users got busy from the offline responder). QueueWait
	// bounds each wait; the bound on the count keeps overload shed at the
	// door (docs/benchmarks.md).
	Queue     int
	QueueWait time.Duration // a turn waiting longer than this gets "busy"; default 10s
	Batch     int           // most turns per upstream call (capped by the provider); default 4

	TurnTimeout  time.Duration // deadline of one upstream call; default 60s
	SystemPrompt string        // default DefaultSystemPrompt
	HistoryTurns int           // past messages (user and assistant) the model sees; default 20
	Coalesce     time.Duration // reply text is stored at most this often, or at a clause end; default 50ms

	// ClaimAfter: a replica silent this long is dead and its turns are taken
	// over. Default 15s.
	ClaimAfter time.Duration
	// HoldMax: a spoken turn whose call never reports what was heard is
	// finished in full after this. Default 2m.
	HoldMax time.Duration

	// StoreRetry: a turn's start and its finished reply are stored again
	// and again through a Redis outage (a restart) for this long, so that
	// a reply is not lost because Redis went away under it. Default 30s.
	StoreRetry time.Duration

	SessionRate ratelimit.Rule // per session; zero Rate = unlimited
	GlobalRate  ratelimit.Rule // across all replicas; zero Rate = unlimited
}

// DefaultSystemPrompt is the system prompt when none is configured.
const DefaultSystemPrompt = "You are Parley, a helpful voice assistant. Answer briefly and clearly, in plain sentences without markup, because your replies are spoken aloud."

var replicaIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c *Config) setDefaults() error {
	if c.ReplicaID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.ReplicaID = "r-" + hex.EncodeToString(b[:])
	}
	if !replicaIDPattern.MatchString(c.ReplicaID) {
		return fmt.Errorf("pipeline: replica id %q: use letters, digits, '.', '_' or '-'", c.ReplicaID)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Prefix == "" {
		c.Prefix = "parley"
	}
	def(&c.Slots, 16)
	def(&c.Queue, 1024)
	def(&c.Batch, 4)
	def(&c.HistoryTurns, 20)
	defd(&c.QueueWait, 10*time.Second)
	defd(&c.TurnTimeout, 60*time.Second)
	defd(&c.Coalesce, 50*time.Millisecond)
	defd(&c.ClaimAfter, 15*time.Second)
	defd(&c.HoldMax, 2*time.Minute)
	defd(&c.StoreRetry, 30*time.Second)
	if c.SystemPrompt == "" {
		c.SystemPrompt = DefaultSystemPrompt
	}
	return nil
}

// Limiter is the rate limiter the Engine asks before accepting a turn.
type Limiter interface {
	Allow(ctx context.Context, key string, r ratelimit.Rule) (ratelimit.Result, error)
	Refund(ctx context.Context, key string, r ratelimit.Rule) error
}

// Engine is the one path every user turn takes, typed or spoken: rate
// limit, persist, queue, a slot, the LLM, the reply streamed into the
// session's log. See doc.go.
type Engine struct {
	cfg     Config
	rdb     redis.UniversalClient
	store   *session.Store
	limiter Limiter
	llm     LLM
	log     *slog.Logger
	batch   int // effective batch size

	mu         sync.Mutex
	queue      []*job
	reserved   int // admitted by Submit, not yet queued
	free       int // free slots
	draining   bool
	handedOver atomic.Bool                  // Drain gave the turns away: stop beating
	active     map[string]map[*job]struct{} // running turns by session, for Interrupt
	held       map[turnKey]*heldTurn        // spoken turns written by the model, waiting for FinishSpoken
	wake       chan struct{}
	idle       chan struct{} // signalled when a batch ends, for Drain
	ready      chan struct{} // closed once Run has queued this replica's old jobs

	runs    atomic.Uint64
	batches sync.WaitGroup
}

type job struct {
	session  string
	turn     int64
	entry    string // id in stream
	stream   string // the job stream that holds it
	accepted time.Time
	adopted  bool                           // taken over: exempt from the queue's wait deadline
	written  func(turn int64, reply string) // non-nil: a call speaks the reply and finishes the turn

	// Set while running; guarded by mu.
	mu        sync.Mutex
	run       string
	reset     bool // first delta must tell the client to drop earlier ones
	buf       strings.Builder
	text      strings.Builder
	lastFlush time.Time
	flushed   bool
	status    session.AppendStatus // Appended while live; Stale or Cut once stopped
	keep      bool                 // held for a call: the job stays in its stream
	stop      func()               // cancels the batch when every job in it stopped
}

// NewEngine builds an Engine. llm is the provider; limiter may be nil for
// no rate limiting.
func NewEngine(rdb redis.UniversalClient, store *session.Store, limiter Limiter, llm LLM, cfg Config, log *slog.Logger) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	b := cfg.Batch
	if m := llm.MaxBatch(); m < b {
		b = m
	}
	if b < 1 {
		b = 1
	}
	return &Engine{
		cfg: cfg, rdb: rdb, store: store, limiter: limiter, llm: llm,
		log:    log.With("replica", cfg.ReplicaID),
		batch:  b,
		free:   cfg.Slots,
		active: make(map[string]map[*job]struct{}),
		held:   make(map[turnKey]*heldTurn),
		wake:   make(chan struct{}, 1),
		idle:   make(chan struct{}, 1),
		ready:  make(chan struct{}),
	}, nil
}

// ReplicaID is this replica's name in Redis.
func (e *Engine) ReplicaID() string { return e.cfg.ReplicaID }

// BatchSize is the most turns one upstream call carries.
func (e *Engine) BatchSize() int { return e.batch }

func (e *Engine) jobsKey(replica string) string { return e.cfg.Prefix + ":jobs:{" + replica + "}" }
func (e *Engine) registryKey() string           { return e.cfg.Prefix + ":replicas" }
func (e *Engine) adoptKey(replica string) string {
	return e.cfg.Prefix + ":jobs:{" + replica + "}:adopt"
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Submit accepts a user turn for the session: it checks the replica's
// queue and the rate limits, stores the turn, persists its job and queues
// it. It returns the turn number, or a *TurnError the client is told. It
// does not wait for the LLM.
func (e *Engine) Submit(ctx context.Context, sessionID, text, source string) (int64, error) {
	return e.submit(ctx, sessionID, text, source, nil)
}

// SubmitSpoken is Submit for a turn whose reply a call speaks: when the
// model has finished, the engine calls written with the whole reply and
// holds the turn open (without a slot) until the call reports, with
// FinishSpoken, what the caller heard. Only then are reply.done (and
// interrupted) stored, so a turn's audio comes before its reply.done. A
// turn the call never reports is finished in full after HoldMax.
func (e *Engine) SubmitSpoken(ctx context.Context, sessionID, text, source string, written func(turn int64, reply string)) (int64, error) {
	if written == nil {
		written = func(int64, string) {}
	}
	return e.submit(ctx, sessionID, text, source, written)
}

func (e *Engine) submit(ctx context.Context, sessionID, text, source string, written func(int64, string)) (int64, error) {
	// Until Run has queued what a previous process left in this replica's
	// stream, a new job there would be queued twice.
	select {
	case <-e.ready:
	case <-ctx.Done():
		return 0, &TurnError{Code: CodeBusy, Message: "the server is starting; try again", RetryAfter: time.Second}
	}
	e.mu.Lock()
	if e.draining {
		e.mu.Unlock()
		turnsTotal.WithLabelValues(string(CodeBusy)).Inc()
		return 0, &TurnError{Code: CodeBusy, Message: "this server is shutting down; reconnect and try again", RetryAfter: time.Second}
	}
	// Waiting turns (queued or being admitted) beyond what the free slots
	// take at once and the queue holds: refuse now rather than wait.
	if len(e.queue)+e.reserved >= e.free+e.cfg.Queue {
		e.mu.Unlock()
		turnsTotal.WithLabelValues(string(CodeBusy)).Inc()
		return 0, &TurnError{Code: CodeBusy, Message: fmt.Sprintf("all %d model slots and %d queue places are taken; try again shortly", e.cfg.Slots, e.cfg.Queue), RetryAfter: time.Second}
	}
	e.reserved++
	e.mu.Unlock()
	queuedOK := false
	defer func() {
		if !queuedOK {
			e.mu.Lock()
			e.reserved--
			e.mu.Unlock()
		}
	}()

	if err := e.rateLimit(ctx, sessionID); err != nil {
		return 0, err
	}
	turn, _, err := e.store.AppendUserTurn(ctx, sessionID, text, source)
	if errors.Is(err, session.ErrNotFound) {
		return 0, &TurnError{Code: CodeNotFound, Message: "the session has expired; start a new one"}
	}
	if errors.Is(err, session.ErrTurnLimit) {
		turnsTotal.WithLabelValues(string(CodeTurnLimit)).Inc()
		return 0, &TurnError{Code: CodeTurnLimit, Message: fmt.Sprintf("this session has had its %d turns; start a new one", e.store.MaxTurns())}
	}
	if err != nil {
		e.log.Error("store turn", "session", sessionID, "err", err)
		turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
		return 0, &TurnError{Code: CodeInternal, Message: "the turn could not be stored; try again"}
	}
	stream := e.jobsKey(e.cfg.ReplicaID)
	entry, err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"s", sessionID, "t", turn}}).Result()
	if err != nil {
		e.log.Error("persist job", "session", sessionID, "turn", turn, "err", err)
		turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
		return turn, &TurnError{Code: CodeInternal, Message: "the turn could not be queued; try again", Turn: turn}
	}
	j := &job{session: sessionID, turn: turn, entry: entry, stream: stream, accepted: time.Now(), written: written}
	e.mu.Lock()
	e.reserved--
	queuedOK = true
	e.queue = append(e.queue, j)
	queued.Set(float64(len(e.queue)))
	e.mu.Unlock()
	signal(e.wake)
	return turn, nil
}

func (e *Engine) rateLimit(ctx context.Context, sessionID string) error {
	if e.limiter == nil {
		return nil
	}
	sessKey := "{" + sessionID + "}"
	check := func(key string, r ratelimit.Rule) (ratelimit.Result, error) {
		if r.Rate <= 0 {
			return ratelimit.Result{Allowed: true}, nil
		}
		return e.limiter.Allow(ctx, key, r)
	}
	res, err := check(sessKey, e.cfg.SessionRate)
	if err == nil && res.Allowed {
		res, err = check("global", e.cfg.GlobalRate)
		if err == nil && !res.Allowed && e.cfg.SessionRate.Rate > 0 {
			// Refused globally: the session's token was not used.
			_ = e.limiter.Refund(ctx, sessKey, e.cfg.SessionRate)
		}
	}
	if err != nil {
		e.log.Error("rate limit", "session", sessionID, "err", err)
		turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
		return &TurnError{Code: CodeInternal, Message: "the rate limiter is unavailable; try again"}
	}
	if !res.Allowed {
		turnsTotal.WithLabelValues(string(CodeRateLimited)).Inc()
		ms := res.RetryAfter.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		return &TurnError{Code: CodeRateLimited, Message: fmt.Sprintf("too many turns; try again in %d ms", ms), RetryAfter: time.Duration(ms) * time.Millisecond}
	}
	return nil
}

// Interrupt stops the session's reply now, on whichever replica runs it:
// the reply is stored as far as it was streamed, followed by
// "interrupted". Turns queued but not started are cut too.
func (e *Engine) Interrupt(ctx context.Context, sessionID string) error {
	if _, err := e.store.Cut(ctx, sessionID); err != nil {
		return err
	}
	// Runs elsewhere stop at their next append; here we stop at once.
	e.mu.Lock()
	var jobs []*job
	for j := range e.active[sessionID] {
		jobs = append(jobs, j)
	}
	e.mu.Unlock()
	for _, j := range jobs {
		j.mu.Lock()
		if j.status == session.Appended {
			j.status = session.Cut
		}
		stop := j.stop
		j.mu.Unlock()
		if stop != nil {
			stop()
		}
	}
	return nil
}

// Run dispatches queued turns to slots, keeps this replica's heartbeat and
// takes over the turns of dead replicas. It returns when ctx is cancelled;
// turns in flight then stop where they are and stay in the job stream, to
// be taken over as from a replica that died. Call Drain first for a
// graceful stop.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.store.Load(ctx); err != nil {
		return err
	}
	if _, err := e.heartbeat(ctx); err != nil {
		return fmt.Errorf("pipeline: heartbeat: %w", err)
	}
	// A previous process with the same replica id may have left turns.
	e.adopt(ctx, e.cfg.ReplicaID)
	close(e.ready)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends with ctx
		defer wg.Done()
		e.keepAlive(ctx)
	}()
	e.dispatch(ctx)
	wg.Wait()
	e.batches.Wait()
	return nil
}

// dispatch hands queued jobs to free slots until ctx ends. A free slot
// takes at most Batch jobs and, when several slots are free, the waiting
// jobs are spread over them: batching happens only when work waits for
// slots, so a lone turn goes at once as a batch of one.
func (e *Engine) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.mu.Lock()
		e.expireLocked(time.Now())
		for e.free > 0 && len(e.queue) > 0 {
			n := (len(e.queue) + e.free - 1) / e.free
			if n > e.batch {
				n = e.batch
			}
			jobs := make([]*job, n)
			copy(jobs, e.queue[:n])
			e.queue = append(e.queue[:0], e.queue[n:]...)
			e.free--
			e.batches.Add(1)
			go func() { // ends when the batch's turns are finished or ctx ends
				defer e.batches.Done()
				e.runBatch(ctx, jobs)
				e.mu.Lock()
				e.free++
				e.mu.Unlock()
				signal(e.wake)
				signal(e.idle)
			}()
		}
		queued.Set(float64(len(e.queue)))
		next := e.nextExpiryLocked()
		e.mu.Unlock()

		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// expireLocked refuses the queued turns that waited longer than QueueWait.
func (e *Engine) expireLocked(now time.Time) {
	kept := e.queue[:0]
	for _, j := range e.queue {
		if !j.adopted && now.Sub(j.accepted) > e.cfg.QueueWait {
			go e.refuse(j) // Redis calls; never under e.mu
			continue
		}
		kept = append(kept, j)
	}
	clear(e.queue[len(kept):])
	e.queue = kept
}

func (e *Engine) nextExpiryLocked() time.Time {
	var next time.Time
	for _, j := range e.queue {
		if j.adopted {
			continue
		}
		if t := j.accepted.Add(e.cfg.QueueWait + time.Millisecond); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// refuse tells the client that a queued turn waited too long, marks the
// turn finished so that no replica retries it, and deletes its job.
func (e *Engine) refuse(j *job) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	turnsTotal.WithLabelValues(string(CodeBusy)).Inc()
	run := e.newRun()
	if st, _, err := e.store.StartTurn(ctx, j.session, j.turn, run); err == nil && st != session.StartDone {
		_, _ = e.store.FailTurn(ctx, j.session, j.turn, run)
		e.publishError(ctx, j.session, &TurnError{Code: CodeBusy, Turn: j.turn, RetryAfter: time.Second,
			Message: fmt.Sprintf("the turn waited more than %s for a model slot; try again", e.cfg.QueueWait)})
	}
	e.deleteJob(ctx, j)
}

func (e *Engine) newRun() string {
	return e.cfg.ReplicaID + "/" + strconv.FormatUint(e.runs.Add(1), 36)
}

func (e *Engine) deleteJob(ctx context.Context, j *job) {
	if err := e.rdb.XDel(ctx, j.stream, j.entry).Err(); err != nil {
		e.log.Warn("delete job", "session", j.session, "turn", j.turn, "err", err)
	}
}

type errorEvent struct {
	Type         string `json:"type"`
	Code         Code   `json:"code"`
	Message      string `json:"message"`
	Turn         int64  `json:"turn,omitempty"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

// durably runs a store call, again and again while it fails (Redis away,
// restarting), with a growing pause, until it succeeds, ctx ends or
// StoreRetry has passed. It returns the last error.
func (e *Engine) durably(ctx context.Context, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(e.cfg.StoreRetry)
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			if err != nil && attempt > 1 {
				e.log.Error("redis still unavailable; giving up", "what", what, "attempts", attempt, "err", err)
			}
			return err
		}
		if attempt == 1 {
			e.log.Warn("redis unavailable; retrying", "what", what, "err", err)
		}
		storeRetries.Inc()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// ErrorWire is the protocol's error event for err.
func ErrorWire(err *TurnError) []byte {
	b, _ := json.Marshal(errorEvent{Type: "error", Code: err.Code, Message: err.Message, Turn: err.Turn, RetryAfterMs: err.RetryAfter.Milliseconds()})
	return b
}

// publishError tells every socket of the session, on any replica.
func (e *Engine) publishError(ctx context.Context, sessionID string, err *TurnError) {
	if perr := e.store.Publish(ctx, sessionID, ErrorWire(err)); perr != nil {
		e.log.Warn("publish error", "session", sessionID, "err", perr)
	}
}

// Drain stops accepting turns, waits until the queued and running ones are
// finished or ctx ends, and then hands whatever is left to the other
// replicas at once (rather than after ClaimAfter).
func (e *Engine) Drain(ctx context.Context) error {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	for {
		e.mu.Lock()
		done := len(e.queue) == 0 && e.free == e.cfg.Slots && e.reserved == 0
		e.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
			e.log.Warn("drain deadline reached; handing turns over")
			goto handover
		case <-e.idle:
		case <-time.After(50 * time.Millisecond):
		}
	}
handover:
	e.finishAllHeld()
	e.handedOver.Store(true)
	// Score 0: every other replica sees this one as dead at its next beat.
	hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return e.rdb.ZAdd(hctx, e.registryKey(), redis.Z{Score: 0, Member: e.cfg.ReplicaID}).Err()
}
