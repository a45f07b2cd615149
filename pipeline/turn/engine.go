package turn

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

	"github.com/parleyhq/parley/internal/clock"
	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/tools"
)

// Config of an Engine. A zero field means the default in its comment.
type Config struct {
	// ReplicaID names this replica in Redis (its job hash, its heartbeat).
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
	// FirstWait: a reply's first piece waits this long for more before it
	// is stored, so that a reply that comes whole (the offline responder,
	// a model that does not stream) is stored in one piece with its end:
	// one script, one event and one socket write fewer. Default 2ms, next
	// to nothing beside a streaming model's time to its first token.
	FirstWait time.Duration

	// ClaimAfter: a replica silent this long is dead and its turns are taken
	// over. Default 15s.
	ClaimAfter time.Duration
	// HoldMax: a spoken turn whose call never reports what was heard is
	// finished in full after this. Default 2m.
	HoldMax time.Duration

	Clock clock.Clock // default the system's

	// Toolbox holds the tools the server runs itself (MCP servers'); nil:
	// none. The client's own come with the session's settings, and so does
	// its selection of these (Settings.ServerTools).
	Toolbox tools.Toolbox
	// ToolSteps: a turn calls tools at most this many times before the
	// model must answer in words; default 4.
	ToolSteps int
	// ToolTimeout: a client tool not answered within this counts as
	// failed (the model is told so); default 30s.
	ToolTimeout time.Duration
	// MaxToolOutput: a tool's output is cut to this many bytes, with a
	// note; default 16 KiB.
	MaxToolOutput int

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
	def(&c.ToolSteps, 4)
	def(&c.MaxToolOutput, 16<<10)
	defd(&c.ToolTimeout, 30*time.Second)
	defd(&c.QueueWait, 10*time.Second)
	defd(&c.TurnTimeout, 60*time.Second)
	defd(&c.Coalesce, 50*time.Millisecond)
	defd(&c.FirstWait, 2*time.Millisecond)
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
	clk     clock.Clock
	rdb     redis.UniversalClient
	store   *session.Store
	limiter Limiter
	llm     llm.LLM
	log     *slog.Logger
	batch   int                  // effective batch size
	refused map[string]time.Time // rate-limit buckets Redis refused, until their next token; under mu
	// busyMessage is the words of a busy refusal, made once: refusals are
	// the hot path under overload.
	busyMessage string

	mu         sync.Mutex
	queue      []*job
	reserved   int // admitted by Submit, not yet queued
	free       int // free slots
	draining   bool
	handedOver atomic.Bool                  // Drain gave the turns away: stop beating
	active     map[string]map[*job]struct{} // turns handed to a slot, by session (Interrupt, startsAtOnce)
	held       map[turnKey]*heldTurn        // spoken turns written by the model, waiting for FinishSpoken
	waiting    map[turnKey]*job             // turns of this replica waiting for tool results
	wake       chan struct{}
	idle       chan struct{} // signalled when a batch ends, for Drain
	ready      chan struct{} // closed once Run has queued this replica's old jobs

	runs    atomic.Uint64
	jobSeq  atomic.Uint64 // job ids' counter (newJobID)
	batches sync.WaitGroup
	tools   sync.WaitGroup  // server tools running
	runCtx  context.Context // Run's, for the server tools; set before ready closes
}

type job struct {
	session  string
	turn     int64
	entry    string // its id: the field in its hash (or entry in a stream from before)
	stream   string // the hash that holds it (jobsKey)
	accepted time.Time
	adopted  bool // taken over: exempt from the queue's wait deadline
	opts     ResponseOptions
	written  func(turn int64, reply string) // non-nil: a call speaks the reply and finishes the turn
	// Tool steps: the text of the turn's earlier steps (already in the
	// history with their calls), the steps taken, the tools the client
	// runs, the session's selection of the server's (nil: all), and the
	// timer of a wait for the client's results.
	prior       string
	steps       int
	clientTools map[string]bool
	serverTools *[]string
	stopWait    func() bool
	// endAtTools: a step that calls the client's tools ends the turn (the
	// session's EndAtClientTools); ended: this one did.
	endAtTools, ended bool

	// Set while running; guarded by mu.
	mu    sync.Mutex
	run   string
	reset bool // first delta must tell the client to drop earlier ones
	// text is the step's reply so far; the first stored bytes of it are
	// in the session's log (AppendDelta), the rest waits for the next
	// flush (pending). One builder, not a second for the pending text:
	// that one was a new buffer after every flush, half of a turn's
	// string allocations.
	text   strings.Builder
	stored int
	// delta: the call of the reply delta being stored, up to deltaEnd,
	// while it has not succeeded: it is sent again, the same call, at the
	// next flush.
	delta     session.Call
	deltaEnd  int
	lastFlush time.Time
	flushed   bool
	// firstWait: the timer that stores the first piece (FirstWait);
	// finishing says the job's end is being stored, which it then no
	// longer does.
	firstWait func() bool
	finishing bool
	pauses    *pauses // the batch's pause flushes, armed at its first flush
	// byRun: the job's entry names its run, not its turn (it was stored
	// with the turn's start); a turn that waits for tools, whose run
	// then owns it no longer, has it renamed first (nameTurn).
	byRun bool
	// started: what the turn's start found when its user turn was stored
	// and started in one script (run already set); used once, by startJob.
	started *session.Started
	calls   []llm.ToolCall       // the tool calls of this step
	status  session.AppendStatus // Appended while live; Stale or Cut once stopped
	keep    bool                 // held for a call: the job stays in its hash
	stop    func()               // cancels the batch when every job in it stopped
}

// NewEngine builds an Engine. llm is the provider; limiter may be nil for
// no rate limiting.
func NewEngine(rdb redis.UniversalClient, store *session.Store, limiter Limiter, model llm.LLM, cfg Config, log *slog.Logger) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	b := cfg.Batch
	if m := model.MaxBatch(); m < b {
		b = m
	}
	if b < 1 {
		b = 1
	}
	return &Engine{
		cfg: cfg, clk: clock.Or(cfg.Clock), rdb: rdb, store: store, limiter: limiter, llm: model,
		log:         log.With("replica", cfg.ReplicaID),
		batch:       b,
		free:        cfg.Slots,
		active:      make(map[string]map[*job]struct{}),
		held:        make(map[turnKey]*heldTurn),
		waiting:     make(map[turnKey]*job),
		wake:        make(chan struct{}, 1),
		idle:        make(chan struct{}, 1),
		ready:       make(chan struct{}),
		refused:     make(map[string]time.Time),
		busyMessage: fmt.Sprintf("all %d model slots and %d queue places are taken; try again shortly", cfg.Slots, cfg.Queue),
	}, nil
}

// ReplicaID is this replica's name in Redis.
func (e *Engine) ReplicaID() string { return e.cfg.ReplicaID }

// BatchSize is the most turns one upstream call carries.
func (e *Engine) BatchSize() int { return e.batch }

func (e *Engine) registryKey() string { return e.cfg.Prefix + ":replicas" }
func (e *Engine) adoptKey(replica string) string {
	return e.cfg.Prefix + ":jobs:{" + replica + "}:adopt"
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Submit accepts a user turn for the session and asks for its reply: it
// checks the replica's queue and the rate limits, stores the turn, persists
// its job and queues it. It returns the turn number, or a *TurnError the
// client is told. It does not wait for the model. It is AppendItem and
// CreateResponse in one, for the price of one.
func (e *Engine) Submit(ctx context.Context, sessionID, text string, source event.Source) (int64, error) {
	return e.respond(ctx, sessionID, ResponseOptions{}, nil, e.userTurn(sessionID, text, source))
}

// SubmitSpoken is Submit for a turn whose reply a call speaks: when the
// model has finished, the engine calls written with the whole reply and
// holds the turn open (without a slot) until the call reports, with
// FinishSpoken, what the caller heard. Only then are reply.done (and
// interrupted) stored, so a turn's audio comes before its reply.done. A
// turn the call never reports is finished in full after HoldMax.
func (e *Engine) SubmitSpoken(ctx context.Context, sessionID, text string, source event.Source, written func(turn int64, reply string)) (int64, error) {
	if written == nil {
		written = func(int64, string) {}
	}
	return e.respond(ctx, sessionID, ResponseOptions{}, written, e.userTurn(sessionID, text, source))
}

// ResponseOptions are one response's own settings; a zero field means the
// session's (session.Settings), or the server's. They are persisted with
// the response's job, so that a replica that takes it over answers alike.
type ResponseOptions struct {
	Instructions string `json:"instructions,omitempty"` // the system prompt of this response
	// Tools, when not nil, are the client's tools this response offers, in
	// place of the session's (an empty list: none of them).
	Tools *[]llm.Tool `json:"tools,omitempty"`
	// ToolChoice: "auto", "none", "required" or a tool's name (as
	// llm.Request's); "" the session's.
	ToolChoice string `json:"tool_choice,omitempty"`
}

func (o ResponseOptions) zero() bool {
	return o.Instructions == "" && o.Tools == nil && o.ToolChoice == ""
}

// AppendItem adds a user item to the conversation without asking for a
// reply (CreateResponse asks later). It returns the item's turn number.
func (e *Engine) AppendItem(ctx context.Context, sessionID, text string, source event.Source) (int64, error) {
	turn, _, err := e.store.AppendItem(ctx, sessionID, text, source)
	if err != nil {
		return 0, e.storeError(sessionID, err)
	}
	return turn, nil
}

// CreateResponse asks for a reply to the conversation as it stands, with
// opts: the turn of the items appended since the last response, or a turn
// of its own. It goes through the same admission, rate limits and
// persistence as Submit.
func (e *Engine) CreateResponse(ctx context.Context, sessionID string, opts ResponseOptions) (int64, error) {
	return e.respond(ctx, sessionID, opts, nil, e.responseTurn(sessionID))
}

// CreateSpokenResponse is CreateResponse for a reply that a call speaks
// (see SubmitSpoken): written gets the whole reply, and FinishSpoken
// finishes the turn.
func (e *Engine) CreateSpokenResponse(ctx context.Context, sessionID string, opts ResponseOptions, written func(turn int64, reply string)) (int64, error) {
	if written == nil {
		written = func(int64, string) {}
	}
	return e.respond(ctx, sessionID, opts, written, e.responseTurn(sessionID))
}

// allocFunc gives a response its turn. Given a run, it may also start the
// turn for that run, and then returns what the start found; it then
// stores job (the turn's job, named by its run) with the turn.
type allocFunc func(ctx context.Context, run string, job session.JobField) (int64, *session.Started, error)

// userTurn stores a user turn that gets a response; with a run, it starts
// the turn in the same script (AppendUserTurnStarted).
func (e *Engine) userTurn(sessionID, text string, source event.Source) allocFunc {
	return func(ctx context.Context, run string, job session.JobField) (int64, *session.Started, error) {
		if run != "" {
			turn, st, err := e.store.AppendUserTurnStarted(ctx, sessionID, text, source, run, e.cfg.HistoryTurns, job)
			return turn, &st, err
		}
		turn, _, err := e.store.AppendUserTurn(ctx, sessionID, text, source)
		return turn, nil, err
	}
}

// responseTurn gives a response to the items appended so far its turn.
func (e *Engine) responseTurn(sessionID string) allocFunc {
	return func(ctx context.Context, _ string, _ session.JobField) (int64, *session.Started, error) {
		turn, err := e.store.Respond(ctx, sessionID)
		return turn, nil, err
	}
}

// respond admits a response, gives it its turn with alloc, persists its
// job and queues it.
func (e *Engine) respond(ctx context.Context, sessionID string, opts ResponseOptions, written func(int64, string), alloc allocFunc) (int64, error) {
	if err := e.admit(ctx); err != nil {
		return 0, err
	}
	// No deadline of the turn's own for what follows, Redis calls: the
	// autopipeliner waits for a reply whatever the context says, and the
	// Redis client's read timeout and retries end a call that hangs
	// (TestStalledRedisFailsTheTurn). The timer made and stopped for every
	// turn bounded nothing and cost CPU (docs/benchmarks.md).
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
	// A typed turn goes straight to its start when nothing waits; a spoken
	// one is started as before, since a barge-in may cut it meanwhile and
	// the call's flow for a turn cut before it started differs.
	j := &job{session: sessionID, stream: e.jobsKey(e.cfg.ReplicaID), opts: opts, written: written}
	var job session.JobField
	if written == nil && e.startsAtOnce(sessionID) {
		// The job is stored with the turn's start, by its script: it
		// names the turn by its run (the turn is not known yet), and a
		// takeover finds the turn the run owns (adopt).
		j.run = e.newRun()
		job = e.jobField(j)
	}
	turn, started, err := alloc(ctx, j.run, job)
	if err != nil && !errors.Is(err, session.ErrJobNotStored) {
		return 0, e.storeError(sessionID, err)
	}
	j.turn = turn
	if err == nil {
		err = e.persist(ctx, j, started)
	}
	if err != nil {
		e.log.Error("persist job", "session", sessionID, "turn", turn, "err", err)
		turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
		return turn, &TurnError{Code: CodeInternal, Message: "the turn could not be queued; try again", Turn: turn}
	}
	j.accepted = e.clk.Now()
	e.mu.Lock()
	e.reserved--
	queuedOK = true
	e.queue = append(e.queue, j)
	queued.Set(float64(len(e.queue)))
	e.mu.Unlock()
	signal(e.wake)
	return turn, nil
}

// persist stores j's job, named by its turn, unless it was stored with
// the turn's start (started).
func (e *Engine) persist(ctx context.Context, j *job, started *session.Started) error {
	if started != nil {
		j.started, j.byRun = started, true
		return nil
	}
	j.run, j.entry = "", "" // not started: the run was never used, nor the id
	return e.storeJob(ctx, j)
}

// startsAtOnce says whether a turn of the session about to be stored may
// be started in the same script (AppendUserTurnStarted): no turn of the
// session waits in the queue or runs here, whose reply the model would
// otherwise see if it finished before this turn started. Other sessions'
// turns do not matter: under load the queue is rarely empty, and that is
// when the script saved counts most.
func (e *Engine) startsAtOnce(sessionID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.active[sessionID]) > 0 {
		return false
	}
	// The queue is short (Config.Queue); a scan costs less than keeping
	// a count by session through every way a job leaves it.
	for _, j := range e.queue {
		if j.session == sessionID {
			return false
		}
	}
	return true
}

// activeLocked records jobs handed to a slot as running, from the moment
// they leave the queue: a turn stored meanwhile must see them.
func (e *Engine) activeLocked(jobs []*job) {
	for _, j := range jobs {
		m := e.active[j.session]
		if m == nil {
			m = make(map[*job]struct{})
			e.active[j.session] = m
		}
		m[j] = struct{}{}
	}
}

// inactive forgets jobs whose batch has ended.
func (e *Engine) inactive(jobs []*job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range jobs {
		delete(e.active[j.session], j)
		if len(e.active[j.session]) == 0 {
			delete(e.active, j.session)
		}
	}
}

// admit reserves a place for a response among this replica's slots and
// queue, or refuses it at once: the decision is local, and costs no
// round trip. The caller gives the place back (e.reserved) unless the
// response is queued.
func (e *Engine) admit(ctx context.Context) error {
	// Until Run has queued what a previous process left in this replica's
	// stream, a new job there would be queued twice.
	select {
	case <-e.ready:
	case <-ctx.Done():
		return &TurnError{Code: CodeBusy, Message: "the server is starting; try again", RetryAfter: time.Second}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining {
		turnsTotal.WithLabelValues(string(CodeBusy)).Inc()
		return &TurnError{Code: CodeBusy, Message: "this server is shutting down; reconnect and try again", RetryAfter: time.Second}
	}
	// Waiting turns (queued or being admitted) beyond what the free slots
	// take at once and the queue holds: refuse now rather than wait.
	if len(e.queue)+e.reserved >= e.free+e.cfg.Queue {
		busyTotal.Inc()
		return &TurnError{Code: CodeBusy, Message: e.busyMessage, RetryAfter: time.Second}
	}
	e.reserved++
	return nil
}

// storeError is the client's word for a failure to store a turn.
func (e *Engine) storeError(sessionID string, err error) error {
	switch {
	case errors.Is(err, session.ErrNotFound):
		return &TurnError{Code: CodeNotFound, Message: "the session has expired; start a new one"}
	case errors.Is(err, session.ErrTurnLimit):
		turnsTotal.WithLabelValues(string(CodeTurnLimit)).Inc()
		return &TurnError{Code: CodeTurnLimit, Message: fmt.Sprintf("this session has had its %d turns; start a new one", e.store.MaxTurns())}
	}
	e.log.Error("store turn", "session", sessionID, "err", err)
	turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
	return &TurnError{Code: CodeInternal, Message: "the turn could not be stored; try again"}
}

// jobOptions reads the options of a job's entry in a stream (a replica's
// from before the hash).
func jobOptions(values map[string]any) ResponseOptions {
	var o ResponseOptions
	if s, _ := values["o"].(string); s != "" {
		_ = json.Unmarshal([]byte(s), &o) // written by jobValues; a bad one means none
	}
	return o
}

// rateLimit takes a token from the session's bucket and the global one in
// Redis. A bucket Redis refused is refused here again, without asking,
// until its next token is due: a client that floods costs no round trip.
func (e *Engine) rateLimit(ctx context.Context, sessionID string) error {
	if e.limiter == nil {
		return nil
	}
	sessKey := "{" + sessionID + "}"
	now := e.clk.Now()
	if wait := e.heldOff(sessKey, now); wait > 0 {
		return rateLimited(wait)
	}
	if wait := e.heldOff(globalKey, now); wait > 0 {
		return rateLimited(wait)
	}
	check := func(key string, r ratelimit.Rule) (ratelimit.Result, error) {
		if r.Rate <= 0 {
			return ratelimit.Result{Allowed: true}, nil
		}
		return e.limiter.Allow(ctx, key, r)
	}
	refused := sessKey
	res, err := check(sessKey, e.cfg.SessionRate)
	if err == nil && res.Allowed {
		refused = globalKey
		res, err = check(globalKey, e.cfg.GlobalRate)
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
		e.holdOff(refused, now.Add(res.RetryAfter))
		return rateLimited(res.RetryAfter)
	}
	return nil
}

// globalKey is the bucket of all the turns of every replica.
const globalKey = "global"

// maxHeldOff bounds the buckets remembered as refused; past it, those whose
// time has come are forgotten.
const maxHeldOff = 4096

// heldOff is how long bucket key is still refused, as Redis said when it
// last refused it; 0 when it may be asked.
func (e *Engine) heldOff(key string, now time.Time) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.refused[key]
	if !ok {
		return 0
	}
	if !now.Before(until) {
		delete(e.refused, key)
		return 0
	}
	return until.Sub(now)
}

// holdOff remembers that bucket key has no token before until.
func (e *Engine) holdOff(key string, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.refused) >= maxHeldOff {
		now := e.clk.Now()
		for k, u := range e.refused {
			if !now.Before(u) {
				delete(e.refused, k)
			}
		}
		if len(e.refused) >= maxHeldOff {
			return // all still due: ask Redis for this one next time
		}
	}
	e.refused[key] = until
}

// rateLimited is the refusal of a turn whose bucket is empty for wait.
func rateLimited(wait time.Duration) error {
	turnsTotal.WithLabelValues(string(CodeRateLimited)).Inc()
	ms := wait.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return &TurnError{Code: CodeRateLimited, Message: fmt.Sprintf("too many turns; try again in %d ms", ms), RetryAfter: time.Duration(ms) * time.Millisecond}
}

// Peeker is a Limiter that can also read a bucket without taking from it
// (ratelimit.Limiter).
type Peeker interface {
	Peek(ctx context.Context, key string, r ratelimit.Rule) (ratelimit.Result, error)
}

// SessionLimit is the session's turn rate and what is left of its bucket
// now (a front end that reports it, as the Realtime protocol's
// rate_limits.updated does). ok is false when the session's turns are not
// limited, or the limiter cannot tell.
func (e *Engine) SessionLimit(ctx context.Context, sessionID string) (rule ratelimit.Rule, left ratelimit.Result, ok bool, err error) {
	p, can := e.limiter.(Peeker)
	if !can || e.cfg.SessionRate.Rate <= 0 {
		return e.cfg.SessionRate, ratelimit.Result{}, false, nil
	}
	left, err = p.Peek(ctx, "{"+sessionID+"}", e.cfg.SessionRate)
	return e.cfg.SessionRate, left, err == nil, err
}

// Interrupt stops the session's reply now, on whichever replica runs it:
// the reply is stored as far as it was streamed, followed by
// "interrupted". Turns queued but not started are cut too, and a turn
// waiting for tool results gets "cancelled" for each and is finished.
func (e *Engine) Interrupt(ctx context.Context, sessionID string) error {
	if _, err := e.store.Cut(ctx, sessionID); err != nil {
		return err
	}
	if err := e.cancelTools(ctx, sessionID); err != nil {
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
// turns in flight then stop where they are and stay in the job hash, to
// be taken over as from a replica that died. Call Drain first for a
// graceful stop.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.store.Load(ctx); err != nil {
		return err
	}
	if _, err := e.heartbeat(ctx); err != nil {
		return fmt.Errorf("pipeline: heartbeat: %w", err)
	}
	e.runCtx = ctx
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
	e.tools.Wait()
	e.stopWaits()
	return nil
}

// dispatch hands queued jobs to free slots until ctx ends. A free slot
// takes at most Batch jobs and, when several slots are free, the waiting
// jobs are spread over them: batching happens only when work waits for
// slots, so a lone turn goes at once as a batch of one.
func (e *Engine) dispatch(ctx context.Context) {
	stopTimer := func() bool { return false }
	defer func() { stopTimer() }()
	for {
		e.mu.Lock()
		now := e.clk.Now()
		e.expireLocked(now)
		for e.free > 0 && len(e.queue) > 0 {
			n := (len(e.queue) + e.free - 1) / e.free
			if n > e.batch {
				n = e.batch
			}
			jobs := make([]*job, n)
			copy(jobs, e.queue[:n])
			e.queue = append(e.queue[:0], e.queue[n:]...)
			e.activeLocked(jobs)
			e.free--
			e.batches.Add(1)
			// A goroutine per batch, not a pool of slot goroutines handed
			// batches: measured A/B, the pool cost 3.5 % more CPU per turn
			// and its p99 was worse.
			go func() { // ends when the batch's turns are finished or ctx ends
				defer e.batches.Done()
				growStack()
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

		// The next queued turn to wait too long wakes the loop to refuse it.
		stopTimer()
		if !next.IsZero() {
			stopTimer = e.clk.AfterFunc(next.Sub(now), func() { signal(e.wake) })
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
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

// durably runs a store call, again and again while it fails (Redis away,
// restarting), with a growing pause, until it succeeds, ctx ends or
// StoreRetry has passed. It returns the last error. An attempt has no
// deadline of its own: the Redis client's read, write and pool timeouts
// end one that hangs (it heeds no context deadline on the socket anyway),
// and a timer for each would be made and stopped on every turn.
func (e *Engine) durably(ctx context.Context, what string, f func(context.Context) error) error {
	// Every try is one call: a try after one that Redis ran but whose
	// reply was lost is answered as that run.
	ctx = session.WithCall(ctx, e.store.NewCall())
	deadline := e.clk.Now().Add(e.cfg.StoreRetry)
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil || ctx.Err() != nil || e.clk.Now().Add(wait).After(deadline) {
			if err != nil && attempt > 1 {
				e.log.Error("redis still unavailable; giving up", "what", what, "attempts", attempt, "err", err)
			}
			return err
		}
		if attempt == 1 {
			e.log.Warn("redis unavailable; retrying", "what", what, "err", err)
		}
		storeRetries.Inc()
		waited := make(chan struct{})
		stop := e.clk.AfterFunc(wait, func() { close(waited) })
		select {
		case <-ctx.Done():
			stop()
			return err
		case <-waited:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// publishError tells every socket of the session, on any replica.
func (e *Engine) publishError(ctx context.Context, sessionID string, err *TurnError) {
	if perr := e.store.Publish(ctx, sessionID, event.Marshal(err.Event())); perr != nil {
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
	// A turn refused while it was being admitted signals nothing: look
	// now and then too.
	poll, stopPoll := e.clk.NewTicker(50 * time.Millisecond)
	defer stopPoll()
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
		case <-poll:
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
